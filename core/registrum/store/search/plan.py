"""A search's order laid out as segments: the sort values each reads, and from which index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, FromClause, and_, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Join

from registrum.store import schema as t
from registrum.store.search.predicates import Pred, attribute_column
from registrum.store.search.syntax import Field, OrderKey


class _DrivingJoin(Join):
    """An inner join whose left side is read first: SQLite's CROSS JOIN, a JOIN elsewhere.

    SQLite's planner does not weigh LIMIT: given a filter on a runs column it
    may prefer scanning runs and sorting them all over walking the ordered index.
    """

    inherit_cache = True


@compiles(_DrivingJoin)
def _join(join: _DrivingJoin, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.visit_join(join, **kw))  # type: ignore[no-untyped-call]


@compiles(_DrivingJoin, "sqlite")
def _cross_join(join: _DrivingJoin, compiler: SQLCompiler, **kw: Any) -> str:
    kw.pop("asfrom", None)
    left = join.left._compiler_dispatch(compiler, asfrom=True, **kw)
    right = join.right._compiler_dispatch(compiler, asfrom=True, **kw)
    assert join.onclause is not None
    onclause = join.onclause._compiler_dispatch(compiler, **kw)
    return f"{left} CROSS JOIN {right} ON {onclause}"


def _ordered_by() -> frozenset[str]:
    """Columns of runs that an index on (project_id, column) yields in order."""
    names = set()
    for index in t.runs.indexes:
        columns = [c.name for c in index.columns]
        if len(columns) >= 2 and columns[0] == "project_id":
            names.add(columns[1])
    return frozenset(names)


_ORDERED_BY = _ordered_by()


@dataclass
class Component:
    """One sort value; `expr` None is a key the project does not have (always NULL)."""

    expr: ColumnElement[Any] | None
    descending: bool
    nullable: bool
    kind: str  # "num" or "str": what a cursor may hold for it

    def order(self) -> ColumnElement[Any]:
        assert self.expr is not None
        ordered = self.expr.desc() if self.descending else self.expr.asc()
        # Only nullable values need NULLS LAST; leaving it off a non-null
        # leading value keeps its index usable for the order on PostgreSQL.
        return ordered.nulls_last() if self.nullable else ordered

    def after(self, value: Any) -> Pred:
        """Rows strictly after `value` in this component's order (NULLs last)."""
        if self.expr is None or value is None:
            return False
        beyond = self.expr < value if self.descending else self.expr > value
        return or_(beyond, self.expr.is_(None)) if self.nullable else beyond

    def equal(self, value: Any) -> Pred:
        if self.expr is None:
            return True
        return self.expr.is_(None) if value is None else self.expr == value


@dataclass
class Lead:
    """A segment's leading sort value, read from a key/value table."""

    table: FromClause
    conditions: list[ColumnElement[bool]]  # on `table`: the key, which values belong here
    value: ColumnElement[Any]
    descending: bool
    kind: str
    indexed: bool = True  # (key, value) is an index, so the rows can be read in order
    # Text params: if `strict_if` finds nothing (the key holds no numbers), `loose`
    # selects the same rows and the (key, value_str) index answers it alone.
    loose: list[ColumnElement[bool]] | None = None
    strict_if: sa.Select[Any] | None = None

    def from_(self) -> FromClause:
        return _DrivingJoin(self.table, t.runs, self.table.c.run_id == t.runs.c.id)

    def component(self) -> Component:
        return Component(self.value, self.descending, False, self.kind)

    def reached(self, value: Any, *, strictly: bool = False) -> ColumnElement[bool]:
        """Rows whose value is `value` (unless strictly) or comes after it."""
        v: Any = self.value
        result: ColumnElement[bool]
        if self.descending:
            result = v < value if strictly else v <= value
        else:
            result = v > value if strictly else v >= value
        return result


@dataclass
class Missing:
    """Runs lacking the ordering value: no row of `table` (of this run) meets `has_value`."""

    table: FromClause
    has_value: list[ColumnElement[bool]]
    # Index-only: if as many rows meet this as the project has runs, no run lacks the value.
    counted: list[ColumnElement[bool]]


@dataclass
class Segment:
    """One ordered stretch of the result."""

    lead: Lead | None = None
    head: Component | None = None  # the leading value, when it is a column of runs
    where: list[ColumnElement[bool]] = field(default_factory=list)  # on runs
    missing: Missing | None = None
    rest: list[Component] = field(default_factory=list)
    outer: list[tuple[FromClause, ColumnElement[bool]]] = field(default_factory=list)
    empty: bool = False  # the ordering key is unknown: nothing can be here
    # Which of the key's sort values (when it is not first: a param has two)
    # the leading value is; None in the segment of runs lacking the key.
    slot: int | None = None
    rest_keys: list[OrderKey] = field(default_factory=list)
    key_ids: dict[str, int] = field(default_factory=dict)

    @property
    def components(self) -> list[Component]:
        """The sort values as a cursor records them."""
        if self.lead is not None:
            return [self.lead.component(), *self.rest]
        return self.rest if self.head is None else [self.head, *self.rest]

    @property
    def early_exit(self) -> bool:
        """Whether an index yields the rows in order, so LIMIT can stop the scan early."""
        return self.lead is not None or index_ordered(self.components)

    def is_complete(self, conn: sa.Connection, project_id: int) -> bool:
        """Whether no run lacks the ordering value, so this missing-value segment is empty.

        Two index-only counts in one statement, instead of probing every run.
        """
        if self.missing is None:
            return False
        m = self.missing
        runs = select(func.count()).where(t.runs.c.project_id == project_id).scalar_subquery()
        present = select(func.count()).select_from(m.table).where(*m.counted).scalar_subquery()
        return bool(conn.execute(select(runs == present)).scalar())


def index_ordered(components: list[Component]) -> bool:
    """Whether an index on runs (project_id, column) yields rows in the first component's order."""
    expr = components[0].expr if components else None
    return isinstance(expr, sa.Column) and expr.table is t.runs and expr.name in _ORDERED_BY


def _tie_breakers(order: list[OrderKey]) -> list[OrderKey]:
    """The user's keys without repeats, then start_time desc and id, so the order is total."""
    seen: set[tuple[str, str]] = set()
    keys: list[OrderKey] = []
    for key in [
        *order,
        OrderKey(Field("attribute", "start_time"), True),
        OrderKey(Field("attribute", "id"), False),
    ]:
        ident = (key.field.kind, key.field.key)
        if ident not in seen:
            seen.add(ident)
            keys.append(key)
    return keys


def plan(order: list[OrderKey], key_ids: dict[str, int]) -> list[Segment]:
    """The segments for an order. Their number and shape depend only on the
    order, not on which keys exist yet, so a cursor stays valid between pages."""
    return segments_for(_tie_breakers(order), key_ids)


def segments_for(keys: list[OrderKey], key_ids: dict[str, int]) -> list[Segment]:
    """The segments for keys that already end in tie-breakers (as `rest_keys` do)."""
    lead, *rest = keys
    outer: list[tuple[FromClause, ColumnElement[bool]]] = []
    rest_components: list[Component] = []
    for key in rest:
        rest_components.extend(_rest_components(key, key_ids, outer))
    segments = _lead_segments(lead, key_ids)
    for segment in segments:
        segment.rest = rest_components
        segment.outer = outer
        segment.rest_keys = rest
        segment.key_ids = key_ids
    return segments


def _rest_components(
    key: OrderKey, key_ids: dict[str, int], outer: list[tuple[FromClause, ColumnElement[bool]]]
) -> list[Component]:
    f, desc = key.field, key.descending
    if f.kind == "attribute":
        column, nullable = attribute_column(f.key)
        return [Component(column, desc, nullable, "num" if f.numeric else "str")]
    if f.kind == "tag":
        tag = t.run_tags.alias()
        outer.append((tag, and_(tag.c.run_id == t.runs.c.id, tag.c.key == f.key)))
        return [Component(tag.c.value, desc, True, "str")]
    key_id = key_ids.get(f.key)
    if f.kind == "metric":
        if key_id is None:
            return [Component(None, desc, True, "num")]
        summary = t.metric_summaries.alias()
        outer.append((summary, and_(summary.c.run_id == t.runs.c.id, summary.c.key_id == key_id)))
        return [Component(summary.c.last_value, desc, True, "num")]
    if key_id is None:
        return [Component(None, desc, True, "num"), Component(None, desc, True, "str")]
    param = t.params.alias()
    outer.append((param, and_(param.c.run_id == t.runs.c.id, param.c.key_id == key_id)))
    # Numbers first, then text: the text orders only the runs without a number, as
    # the segments do when a param leads (1 and 1.0 tie, whatever their text).
    text_only = sa.case((param.c.value_num.is_(None), param.c.value_str))
    return [
        Component(param.c.value_num, desc, True, "num"),
        Component(text_only, desc, True, "str"),
    ]


def _lead_segments(lead: OrderKey, key_ids: dict[str, int]) -> list[Segment]:
    f, desc = lead.field, lead.descending
    if f.kind == "attribute":
        column, nullable = attribute_column(f.key)
        head = Component(column, desc, False, "num" if f.numeric else "str")
        if not nullable:
            return [Segment(head=head, slot=0)]
        return [
            Segment(head=head, where=[column.is_not(None)], slot=0),
            Segment(where=[column.is_(None)]),
        ]
    if f.kind == "tag":
        tag, tags = t.run_tags.alias(), t.run_tags
        has_value = [tags.c.key == f.key]
        return [
            # No (key, value) index on tags: their order is a sort of the key's rows.
            Segment(
                lead=Lead(tag, [tag.c.key == f.key], tag.c.value, desc, "str", indexed=False),
                slot=0,
            ),
            Segment(missing=Missing(tags, has_value, has_value)),
        ]
    key_id = key_ids.get(f.key)
    if f.kind == "metric":
        if key_id is None:
            return [Segment(empty=True, slot=0), Segment()]
        summary, summaries = t.metric_summaries.alias(), t.metric_summaries
        has_value = [summaries.c.key_id == key_id, summaries.c.last_value.is_not(None)]
        in_lead = [summary.c.key_id == key_id, summary.c.last_value.is_not(None)]
        return [
            Segment(lead=Lead(summary, in_lead, summary.c.last_value, desc, "num"), slot=0),
            Segment(missing=Missing(summaries, has_value, has_value)),
        ]
    if key_id is None:
        return [Segment(empty=True, slot=0), Segment(empty=True, slot=1), Segment()]
    num, text, params = t.params.alias(), t.params.alias(), t.params
    numeric = [num.c.key_id == key_id, num.c.value_num.is_not(None)]
    textual = [text.c.key_id == key_id, text.c.value_num.is_(None), text.c.value_str.is_not(None)]
    has_value = [
        params.c.key_id == key_id,
        or_(params.c.value_num.is_not(None), params.c.value_str.is_not(None)),
    ]
    # The service stores every non-null value as text too, so this counts the runs with one.
    counted = [params.c.key_id == key_id, params.c.value_str.is_not(None)]
    return [
        Segment(lead=Lead(num, numeric, num.c.value_num, desc, "num"), slot=0),
        Segment(
            lead=Lead(
                text,
                textual,
                text.c.value_str,
                desc,
                "str",
                loose=[text.c.key_id == key_id, text.c.value_str.is_not(None)],
                strict_if=select(params.c.run_id)
                .where(params.c.key_id == key_id, params.c.value_num.is_not(None))
                .limit(1),
            ),
            slot=1,
        ),
        Segment(missing=Missing(params, has_value, counted)),
    ]
