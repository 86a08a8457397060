"""MLflow's search strings in Registrum's filter language.

MLflow's run filter grammar is nearly a subset of Registrum's (`metrics.loss < 1 and
params.lr = '0.01'`, backticked keys, `in`, `like`), so a filter is rewritten, not
re-implemented: MLflow's attribute names become Registrum's (`run_name` is `name`,
`run_id` is `id`), then Registrum's own parser reads it, and the tree is adjusted where the
two disagree on values (MLflow's times are milliseconds and its statuses upper case)
before it is written back as Registrum text. `or`, which MLflow refuses, passes through.

Experiments are few, so their filters (`name = 'x'`, `name LIKE '%x%'`, `tags.k = 'v'`,
`creation_time > 0`) are evaluated in Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from registrum.server.mlflow._wire import MlflowError, invalid
from registrum.store.search.parser import like_parts, parse_filter
from registrum.store.search.syntax import And, Comparison, Node, Not, Or, Value

_ATTRIBUTES = {
    "run_name": "name",
    "run_id": "id",
    "user_id": "user",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "created": "start_time",
}
_ATTRIBUTE_PREFIX = re.compile(
    r"(?<![\w.`])(?:attributes|attribute|attr|run)\.(`[^`]*`|\"[^\"]*\"|\w+)", re.I
)
_PARAM_PREFIX = re.compile(r"(?<![\w.`])(?:parameters|parameter)\.", re.I)
_BARE = re.compile(r"(?<![\w.`])(run_name|run_id|user_id|created)(?![\w.])", re.I)
_ILIKE = re.compile(r"(?<![\w.`])ilike(?!\w)", re.I)
_DATASET = re.compile(r"(?<![\w.`])datasets?\.", re.I)
# Quoted text, which the rewriting leaves alone.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|`(?:[^`\\]|\\.)*`?")

_STATUSES: dict[str, tuple[str, ...]] = {
    "running": ("running",),
    "scheduled": ("running",),
    "finished": ("finished",),
    "failed": ("failed", "crashed"),
    "killed": ("killed",),
}


def _attribute(match: re.Match[str]) -> str:
    name = match.group(1).strip('`"').lower()
    found = _ATTRIBUTES.get(name)
    if found is None:
        raise invalid(
            f"Invalid attribute key '{name}' specified. Valid keys are {sorted(_ATTRIBUTES)}"
        )
    return found


def _rewrite_names(text: str) -> str:
    """MLflow's field names as Registrum's, outside quoted text."""
    out: list[str] = []
    last = 0
    for quoted in _QUOTED.finditer(text):
        out.append(_rewrite_plain(text[last : quoted.start()]))
        out.append(quoted.group())
        last = quoted.end()
    out.append(_rewrite_plain(text[last:]))
    return "".join(out)


def _rewrite_plain(part: str) -> str:
    if _DATASET.search(part):
        raise invalid("Filtering runs by datasets is not supported by this server.")
    part = _ATTRIBUTE_PREFIX.sub(_attribute, part)
    part = _PARAM_PREFIX.sub("params.", part)
    part = _BARE.sub(lambda m: _ATTRIBUTES[m.group(1).lower()], part)
    # Case-insensitive matching follows the database's LIKE (SQLite ignores ASCII case).
    return _ILIKE.sub("like", part)


def run_filter(text: str | None) -> str | None:
    """An MLflow run filter as a Registrum filter (None for none)."""
    if text is None or not text.strip():
        return None
    tree = parse_filter(_rewrite_names(text))
    return None if tree is None else _render(_adjust(tree))


def run_order(items: Sequence[str]) -> list[str]:
    """MLflow's `order_by` items (`metrics.loss ASC`) in Registrum's order syntax."""
    return [_rewrite_names(item) for item in items if item.strip()]


def _adjust(node: Node) -> Node:
    if isinstance(node, And):
        return And(tuple(_adjust(i) for i in node.items))
    if isinstance(node, Or):
        return Or(tuple(_adjust(i) for i in node.items))
    if isinstance(node, Not):
        return Not(_adjust(node.item))
    field = node.field
    if field.kind == "attribute" and field.key in ("start_time", "end_time"):
        return Comparison(field, node.op, tuple(_millis(v) for v in node.values), node.position)
    if field.kind == "attribute" and field.key == "status":
        return _status(node)
    return node


def _millis(value: Value) -> Value:
    if value.kind != "number" or not math.isfinite(value.number):
        return value
    seconds = value.number / 1000.0
    return Value("number", seconds, repr(seconds), value.position)


def _status(node: Comparison) -> Comparison:
    """MLflow's statuses as Registrum's; FAILED also matches runs that crashed."""
    if node.op.endswith("like"):
        pattern = node.values[0]
        return Comparison(
            node.field,
            node.op,
            (Value("string", math.nan, pattern.text.lower(), pattern.position),),
            node.position,
        )
    names: list[Value] = []
    for value in node.values:
        for status in _STATUSES.get(value.text.lower(), (value.text.lower(),)):
            names.append(Value("string", math.nan, status, value.position))
    op = node.op
    if len(names) > 1 and op in ("=", "!="):
        op = "in" if op == "=" else "not in"
    return Comparison(node.field, op, tuple(names), node.position)


def _render(node: Node) -> str:
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " or "
        return word.join(f"({_render(i)})" for i in node.items)
    if isinstance(node, Not):
        return f"not ({_render(node.item)})"
    values = [_literal(v) for v in node.values]
    if node.op.endswith("in"):
        return f"{node.field} {node.op} ({', '.join(values)})"
    return f"{node.field} {node.op} {values[0]}"


def _literal(value: Value) -> str:
    if value.kind == "string":
        return "'" + value.text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value.kind == "number" and not _is_number_text(value.text):
        return repr(value.number)
    return value.text


def _is_number_text(text: str) -> bool:
    return re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", text) is not None


# -- experiments -------------------------------------------------------------------------

_EXPERIMENT_TERM = re.compile(
    r"\s*(?:(attributes?|attr|tags?)\.)?(`[^`]+`|\"[^\"]+\"|[\w.]+)\s*"
    r"(=|!=|<>|<=|>=|<|>|not\s+ilike|not\s+like|ilike|like)\s*"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\d+(?:\.\d+)?)\s*",
    re.I,
)
_AND = re.compile(r"and\b", re.I)
Check = Callable[[Mapping[str, Any]], bool]


def experiment_filter(text: str | None) -> Check:
    """A test for an experiment (its JSON form) from an MLflow experiment filter."""
    if text is None or not text.strip():
        return lambda _: True
    checks: list[Check] = []
    position = 0
    while True:
        m = _EXPERIMENT_TERM.match(text, position)
        if m is None:
            raise invalid(
                f"Invalid experiment filter {text!r} near position {position}: use terms "
                "such as name = 'x', name LIKE '%x%', tags.k = 'v' or creation_time > 0, "
                "joined by AND"
            )
        checks.append(_experiment_term(*m.groups()))
        position = m.end()
        if position >= len(text):
            break
        joined = _AND.match(text, position)
        if joined is None:
            raise invalid(f"Invalid experiment filter {text!r}: expected AND at {position}")
        position = joined.end()
    return lambda experiment: all(check(experiment) for check in checks)


def _experiment_term(prefix: str | None, key: str, op: str, literal: str) -> Check:
    key = key.strip('`"')
    op = " ".join(op.lower().split()).replace("<>", "!=")
    is_tag = prefix is not None and prefix.lower().startswith("tag")
    if literal[0] in "'\"":
        value: Any = re.sub(r"\\(.)", r"\1", literal[1:-1])
    else:
        value = float(literal)
    if not is_tag and key not in ("name", "creation_time", "last_update_time", "experiment_id"):
        raise invalid(f"Invalid attribute key '{key}' in the experiment filter")

    def read(experiment: Mapping[str, Any]) -> Any:
        if is_tag:
            return {t["key"]: t["value"] for t in experiment.get("tags", [])}.get(key)
        found = experiment.get(key)
        return float(found) if key.endswith("time") and found is not None else found

    compare = _comparison(op, value)
    return lambda experiment: compare(read(experiment))


def _comparison(op: str, value: Any) -> Callable[[Any], bool]:
    if op.endswith("like"):
        if not isinstance(value, str):
            raise invalid(f"'{op}' needs a quoted pattern")
        fold = "ilike" in op
        regex = re.compile(
            "".join(
                (".*" if ch == "%" else ".") if wild else re.escape(ch)
                for ch, wild in like_parts(value)
            ),
            re.I | re.S if fold else re.S,
        )
        negate = op.startswith("not")
        return lambda found: found is not None and (regex.fullmatch(str(found)) is None) == negate
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    check = ops[op]

    def compare(found: Any) -> bool:
        if found is None:
            return False
        try:
            return bool(check(found, value))
        except TypeError:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE", f"cannot compare {found!r} with {value!r}"
            ) from None

    return compare
