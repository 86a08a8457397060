"""MLflow's registry search strings: the filters of `registered-models/search` and
`model-versions/search` (`name = 'x'`, `name LIKE '%x%'`, `tags.k = 'v'`, `run_id IN (...)`,
clauses joined by AND), their `order_by` and their pages.

A filter becomes a list of clauses tested against each record's fields (a missing tag is
None: it equals nothing and differs from everything, so the prompt filter the client adds,
``tag.`mlflow.prompt.is_prompt` != 'true'``, keeps every model without that tag).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registrum.server.mlflow._paging import decode_token, encode_token, offset_of
from registrum.server.mlflow._wire import invalid
from registrum.store.search.parser import like_parts

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<quoted>`[^`]*`)
    | (?P<op>!=|<>|>=|<=|=|<|>)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<comma>,)
    | (?P<word>[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"LIKE", "ILIKE", "IN"}
_TAG_PREFIXES = ("tags.", "tag.")
_DIRS = {"ASC", "DESC"}


@dataclass(frozen=True)
class Clause:
    key: str  # a field ("name", "run_id") or "tags.<key>"
    op: str  # =, !=, <, <=, >, >=, LIKE, ILIKE, IN
    value: Any  # a string, a number or (IN) a tuple of them


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        m = _TOKEN.match(text, position)
        if m is None or m.end() == position:
            raise invalid(f"Invalid filter {text!r}: cannot read it at {text[position:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        position = m.end()
    return out


def _unquote(kind: str, token: str) -> str:
    if kind == "string" and token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if kind == "quoted":
        return token[1:-1]
    return token


def parse_filter(text: str | None, fields: Sequence[str]) -> list[Clause]:
    """`text` as AND-ed clauses on `fields` and tags; anything else is refused with the
    clause that could not be read."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses = []
    i = 0

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise invalid(f"Invalid filter {text!r}: it ends too early")
        i += 1
        return tokens[i - 1]

    while True:
        key = _key(take, text)
        if key not in fields and not key.startswith("tags."):
            allowed = ", ".join([*fields, "tags.<key>"])
            raise invalid(f"Invalid filter {text!r}: cannot search by {key!r}; use {allowed}")
        kind, op = take()
        if kind == "word" and op.upper() in _WORD_OPS:
            op = op.upper()
        elif kind == "op":
            op = "!=" if op == "<>" else op
        else:
            raise invalid(f"Invalid filter {text!r}: expected a comparison after {key!r}")
        value = _values(take, text) if op == "IN" else _value(take(), text)
        clauses.append(Clause(key, op, value))
        if i == len(tokens):
            return clauses
        kind, word = take()
        if kind != "word" or word.upper() != "AND":
            raise invalid(f"Invalid filter {text!r}: join clauses with AND (found {word!r})")


def _key(take: Callable[[], tuple[str, str]], text: str) -> str:
    kind, token = take()
    if kind in ("string", "quoted"):
        return _unquote(kind, token)
    if kind != "word":
        raise invalid(f"Invalid filter {text!r}: expected a field name, found {token!r}")
    lowered = token.lower()
    for prefix in _TAG_PREFIXES:
        if lowered == prefix:  # tag.`a.b` or tags."a b"
            kind, quoted = take()
            if kind not in ("string", "quoted"):
                raise invalid(f"Invalid filter {text!r}: expected a tag key after {token!r}")
            return "tags." + _unquote(kind, quoted)
        if lowered.startswith(prefix):
            return "tags." + token[len(prefix) :]
    return lowered.removeprefix("attributes.").removeprefix("attribute.")


def _value(token: tuple[str, str], text: str) -> str | float:
    kind, raw = token
    if kind == "string":
        return _unquote(kind, raw)
    if kind == "word" and re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
        return float(raw)
    raise invalid(f"Invalid filter {text!r}: {raw!r} is not a quoted string or a number")


def _values(take: Callable[[], tuple[str, str]], text: str) -> tuple[str | float, ...]:
    if take()[0] != "open":
        raise invalid(f"Invalid filter {text!r}: IN takes a list such as ('a', 'b')")
    values = [_value(take(), text)]
    while True:
        kind, _ = take()
        if kind == "close":
            return tuple(values)
        if kind != "comma":
            raise invalid(f"Invalid filter {text!r}: expected ',' or ')' in a list")
        values.append(_value(take(), text))


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    """A LIKE pattern as Registrum's search reads one (a backslash escapes a wildcard)."""
    parts = (
        (".*" if c == "%" else ".") if wild else re.escape(c) for c, wild in like_parts(pattern)
    )
    return re.compile("".join(parts), flags | re.DOTALL)


def _holds(clause: Clause, have: Any) -> bool:
    if clause.op == "IN":
        return have is not None and str(have) in {_text(x) for x in clause.value}
    if have is None:
        return clause.op == "!="
    if clause.op in ("LIKE", "ILIKE"):
        flags = re.IGNORECASE if clause.op == "ILIKE" else 0
        return _like(str(clause.value), flags).fullmatch(str(have)) is not None
    want = clause.value
    if isinstance(want, float):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
    else:
        have = str(have)
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: bool(a == b),
        "!=": lambda a, b: bool(a != b),
        "<": lambda a, b: bool(a < b),
        "<=": lambda a, b: bool(a <= b),
        ">": lambda a, b: bool(a > b),
        ">=": lambda a, b: bool(a >= b),
    }
    return comparisons[clause.op](have, want)


def _text(value: str | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def matches(clauses: Sequence[Clause], fields: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    """Whether a record with `fields` and `tags` satisfies every clause."""
    for clause in clauses:
        if clause.key.startswith("tags."):
            have: Any = tags.get(clause.key[len("tags.") :])
        else:
            have = fields.get(clause.key)
        if not _holds(clause, have):
            return False
    return True


def equal_to(clauses: Sequence[Clause], key: str) -> str | None:
    """The value a clause `key = 'value'` pins (lets a search read one model, not all)."""
    for clause in clauses:
        if clause.key == key and clause.op == "=" and isinstance(clause.value, str):
            return clause.value
    return None


def order(
    records: list[dict[str, Any]], order_by: Sequence[str], columns: Mapping[str, str]
) -> list[dict[str, Any]]:
    """`records` (answer objects) sorted by MLflow's `order_by` ("name ASC",
    "last_updated_timestamp DESC"); `columns` maps each accepted name to a record field."""
    for term in reversed(order_by):
        words = term.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in _DIRS):
            raise invalid(f"Invalid order_by {term!r}: use a column and ASC or DESC")
        column = columns.get(words[0].lower().removeprefix("attributes."))
        if column is None:
            raise invalid(
                f"Invalid order_by {term!r}: order by one of {', '.join(sorted(columns))}"
            )
        descending = len(words) == 2 and words[1].upper() == "DESC"
        records = sorted(records, key=_by(column), reverse=descending)
    return records


def _by(column: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: _sortable(record.get(column))


def _sortable(value: Any) -> Any:
    """Version numbers are strings on the wire and sort as numbers."""
    if isinstance(value, str) and value.isdigit():
        return (0, int(value), "")
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, "" if value is None else str(value))


def page(
    records: list[dict[str, Any]], token: str | None, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `records` and the token of the next (None: this was the last)."""
    offset = offset_of(decode_token(token))
    chunk = records[offset : offset + size]
    if offset + size >= len(records):
        return chunk, None
    return chunk, encode_token({"offset": offset + size})
