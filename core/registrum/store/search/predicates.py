"""A parsed filter compiled to a WHERE clause over runs, every value a bound parameter."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, FromClause, and_, not_, or_, select

from registrum.store import schema as t
from registrum.store.search.parser import like_parts
from registrum.store.search.syntax import COMPARISON_OPS, And, Comparison, Node, Not, Or, Value

_VALUE_STR_LEN = 250  # params.value_str keeps the first 250 characters

# True / False: known without asking the database.
Pred = ColumnElement[bool] | bool

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def all_of(preds: Sequence[Pred]) -> Pred:
    """`and` of the predicates, folding the constants away."""
    kept: list[ColumnElement[bool]] = []
    for pred in preds:
        if pred is False:
            return False
        if pred is not True:
            kept.append(pred)
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else and_(*kept)


def any_of(preds: Sequence[Pred]) -> Pred:
    """`or` of the predicates, folding the constants away."""
    kept: list[ColumnElement[bool]] = []
    for pred in preds:
        if pred is True:
            return True
        if pred is not False:
            kept.append(pred)
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else or_(*kept)


def run_has_row(table: FromClause, *conditions: Any, fence: bool) -> ColumnElement[bool]:
    """A probe: does `table` hold a row of this run meeting `conditions`?

    `fence` (PostgreSQL only) keeps it a per-row probe: OFFSET stops the planner
    from turning it into a semi-join or a hashed subplan, which read every row
    of the key before the first result and so defeat LIMIT.
    """
    probe = select(table.c.run_id).where(table.c.run_id == t.runs.c.id, *conditions)
    if fence:
        probe = probe.offset(0)
    return probe.correlate(t.runs).exists()


class FilterCompiler:
    """AST to a WHERE clause over `runs`; every comparison is two-valued.

    A comparison on a key a run lacks, or on a NaN metric, is false, so that
    `not` of it is true: SQL's unknown never leaks out of a comparison.
    """

    def __init__(self, key_ids: dict[str, int], *, sqlite: bool, fence: bool) -> None:
        self.key_ids = key_ids
        self.sqlite = sqlite
        self.fence = fence

    def node(self, node: Node | None) -> Pred:
        if node is None:
            return True
        if isinstance(node, And):
            return all_of([self.node(item) for item in node.items])
        if isinstance(node, Or):
            return any_of([self.node(item) for item in node.items])
        if isinstance(node, Not):
            inner = self.node(node.item)
            return (not inner) if isinstance(inner, bool) else not_(inner)
        return self.comparison(node)

    def comparison(self, c: Comparison) -> Pred:
        kind, key = c.field.kind, c.field.key
        if kind == "attribute":
            column, nullable = attribute_column(key)
            pred = self.attribute(column, c)
            return and_(column.is_not(None), pred) if nullable else pred
        if kind == "tag":
            tag = t.run_tags.alias()
            pred = self.compare(tag.c.value, c.op, _texts(c.values))
            return run_has_row(tag, tag.c.key == key, pred, fence=self.fence)
        key_id = self.key_ids.get(key)
        if key_id is None:
            return False
        if kind == "metric":
            summary = t.metric_summaries.alias()
            pred = self.metric(summary, c)
            return run_has_row(summary, summary.c.key_id == key_id, pred, fence=self.fence)
        param = t.params.alias()
        pred = self.param(param, c.op, c.values)
        return run_has_row(param, param.c.key_id == key_id, pred, fence=self.fence)

    def attribute(self, column: Any, c: Comparison) -> ColumnElement[bool]:
        values = [v.number for v in c.values] if c.field.numeric else _texts(c.values)
        return self.compare(column, c.op, values)

    def metric(self, summary: FromClause, c: Comparison) -> ColumnElement[bool]:
        return self.compare(summary.c.last_value, c.op, [v.number for v in c.values])

    def param(self, param: FromClause, op: str, values: tuple[Value, ...]) -> ColumnElement[bool]:
        """Numbers (and booleans, as 1/0) compare `value_num`; strings compare `value_str`."""
        num, text = param.c.value_num, param.c.value_str
        numbers = [v.number for v in values if v.kind != "string"]
        strings = [v.text[:_VALUE_STR_LEN] for v in values if v.kind == "string"]
        if not strings:
            return self.compare(num, op, numbers)
        if not numbers:
            return self.compare(text, op, strings)
        # A mixed list: each value matches the column of its own type.
        hit = or_(
            and_(num.is_not(None), num.in_(numbers)), and_(text.is_not(None), text.in_(strings))
        )
        if op == "in":
            return hit
        return and_(or_(num.is_not(None), text.is_not(None)), not_(hit))

    def compare(self, column: Any, op: str, values: Sequence[Any]) -> ColumnElement[bool]:
        if op in COMPARISON_OPS:
            result: ColumnElement[bool] = _COMPARE[op](column, values[0])
            return result
        if op == "in":
            return column.in_(values)  # type: ignore[no-any-return]
        if op == "not in":
            return column.not_in(values)  # type: ignore[no-any-return]
        like = self.like(column, str(values[0]))
        return not_(like) if op == "not like" else like

    def like(self, column: Any, pattern: str) -> ColumnElement[bool]:
        """Case-sensitive LIKE on both databases (SQLite's LIKE ignores case: use GLOB)."""
        parts = like_parts(pattern)
        if self.sqlite:
            glob = "".join(
                ("*" if ch == "%" else "?") if wild else (f"[{ch}]" if ch in "*?[" else ch)
                for ch, wild in parts
            )
            return column.op("GLOB", is_comparison=True)(glob)  # type: ignore[no-any-return]
        escaped = "".join(ch if wild else ("\\" + ch if ch in "%_\\" else ch) for ch, wild in parts)
        return column.like(escaped, escape="\\")  # type: ignore[no-any-return]

    def driver(self, c: Comparison, project_id: int) -> sa.Select[Any] | None:
        """The ids of the runs meeting `c`, read from an index, or None if no index fits."""
        if c.op not in (*COMPARISON_OPS, "in") or c.op == "!=":
            return None
        kind, key = c.field.kind, c.field.key
        if kind == "attribute":
            if key not in ("id", "parent_id"):
                return None
            runs = t.runs
            pred = self.attribute(runs.c[key], c)
            return select(runs.c.id).where(pred, runs.c.project_id == project_id)
        key_id = self.key_ids.get(key)
        if key_id is None or kind == "tag":
            return None
        if kind == "metric":
            summary = t.metric_summaries
            return select(summary.c.run_id).where(
                summary.c.key_id == key_id, self.metric(summary, c)
            )
        if len({v.kind == "string" for v in c.values}) > 1:
            return None  # a mixed list reads two indexes
        param = t.params
        return select(param.c.run_id).where(
            param.c.key_id == key_id, self.param(param, c.op, c.values)
        )


def _texts(values: tuple[Value, ...]) -> list[str]:
    """Tags and text attributes compare as text: a number as typed, booleans as true/false."""
    return [v.text for v in values]


def attribute_column(key: str) -> tuple[Any, bool]:
    """The SQL of a run attribute, and whether it may be NULL: a column of runs, or for
    `duration` the end time minus the start time (NULL while the run has not ended)."""
    if key == "duration":
        return t.runs.c.end_time - t.runs.c.start_time, True
    column = t.runs.c[key]
    return column, bool(column.nullable)
