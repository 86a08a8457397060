"""Run search: a parsed filter and order compiled to SQL over the schema, paged by cursor.

Two query shapes, chosen per call, keep a page cheap whatever the data:

* **Order-driven** (the usual case). The rows are read in the order asked
  for, from an index (`metric_summaries (key_id, last_value, run_id)` when
  ordering by a metric, `runs (project_id, start_time)` by default), and each
  run is checked against the filter with EXISTS probes on primary keys, until
  LIMIT rows matched. A page costs about limit / selectivity probes. A metric
  or param index is read in windows of a few thousand entries, so ties on the
  leading value are never sorted in bulk; a value that fills a window (lr
  takes five values) is read as one tie group, walking start_time's index.
* **Candidate-driven**, when one top-level `and` term of the filter picks out
  few runs through an index (`params.seed = 42`, `parent_id = '...'`): those
  run ids are read first (bounded), and only they are checked and sorted.

The databases' planners are steered, not trusted, because they cannot know the
selectivity of key/value rows and do not weigh LIMIT: on SQLite a CROSS JOIN
fixes which table is read first, and on PostgreSQL an `OFFSET 0` in each EXISTS
keeps it a per-row probe instead of a hash join over every row of that key.

Runs lacking the ordering value come after the others, in a later *segment*
(a param order has three: numeric values, text values, missing). A cursor
records the segment and the sort values of the last row returned (keyset
pagination), so every page is as cheap as the first.

Every value from the filter is a bound parameter; nothing the user typed is
ever formatted into SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, FromClause, and_, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Join

from registrum.errors import InvalidArgument
from registrum.store import schema as t
from registrum.store.filters import (
    COMPARISON_OPS,
    And,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    OrderKey,
    Value,
    like_parts,
    parse_filter,
    parse_order_by,
)

MAX_LIMIT = 1000
_MAX_CURSOR = 8192
_VALUE_STR_LEN = 250  # params.value_str keeps the first 250 characters
_CURSOR_VERSION = 1
_MAX_DRIVER_PROBES = 2
_WINDOW = 2000  # index entries in the first window of an ordered walk; doubles after

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


def search_run_ids(
    conn: sa.Connection,
    project_id: int,
    *,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[str], str | None]:
    """Run ids of one project matching `filter`, ordered, at most `limit`;
    plus the next cursor (None at the end).

    Args:
        conn: an open connection; the search runs in its transaction.
        project_id: the project whose runs are searched.
        filter: the filter language, e.g. `metrics.val_loss < 0.3 and params.lr = 0.001`.
        order_by: `"-metrics.val_acc"`, `"name asc, start_time desc"` or a list of
            such; runs missing an ordering value come last. Default: newest first.
        limit: page size, 1 to 1000.
        cursor: the cursor a previous call with the same filter and order returned.

    Raises:
        FilterSyntaxError: the filter does not parse; `position` says where.
        InvalidArgument: bad order_by, limit or cursor.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    tree = parse_filter(filter)
    order = parse_order_by(order_by)
    digest = _query_hash(project_id, filter, order)

    names = {f.key for f in _fields(tree) if f.kind in ("metric", "param")}
    names.update(k.field.key for k in order if k.field.kind in ("metric", "param"))
    key_ids = _resolve_keys(conn, project_id, names)
    sqlite = conn.dialect.name == "sqlite"

    segments = _plan(order, key_ids)
    start_segment, after = 0, None
    if cursor is not None:
        start_segment, after = _decode_cursor(cursor, digest, segments)

    compiler = _Compiler(key_ids, sqlite=sqlite, fence=not sqlite)
    where = compiler.node(tree)
    if where is False:
        return [], None
    # Probes that PostgreSQL may hash, for segments that must read every run anyway.
    unfenced = where if sqlite else _Compiler(key_ids, sqlite=False, fence=False).node(tree)
    candidates = _candidates(conn, project_id, tree, compiler, _driver_threshold(limit))
    if candidates is not None and not candidates:
        return [], None

    wanted = limit + 1  # one more than asked tells whether another page exists
    found: list[tuple[int, Sequence[Any]]] = []
    for index in range(start_segment, len(segments)):
        segment = segments[index]
        resume = after if index == start_segment else None
        if segment.empty:
            continue
        if candidates is None and resume is None and segment.is_complete(conn, project_id):
            continue
        fence = not sqlite and (candidates is not None or segment.early_exit)
        read = _Read(conn, project_id, where if fence else unfenced, fence, candidates, segment)
        found.extend((index, row) for row in segment.read(read, resume, wanted - len(found)))
        if len(found) >= wanted:
            break

    ids = [str(row[0]) for _, row in found[:limit]]
    if len(found) <= limit:
        return ids, None
    index, row = found[limit - 1]
    return ids, _encode_cursor(digest, index, list(row[1:]))


# Filter compilation


def _fields(node: Node | None) -> Iterator[Field]:
    if isinstance(node, Comparison):
        yield node.field
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from _fields(item)
    elif isinstance(node, Not):
        yield from _fields(node.item)


def _resolve_keys(conn: sa.Connection, project_id: int, names: set[str]) -> dict[str, int]:
    """Key names to their interned ids, in one small query; unknown names are absent."""
    if not names:
        return {}
    k = t.keys.c
    rows = conn.execute(select(k.name, k.id).where(k.project_id == project_id, k.name.in_(names)))
    return {str(name): int(key_id) for name, key_id in rows}


def _all(preds: Sequence[Pred]) -> Pred:
    kept: list[ColumnElement[bool]] = []
    for pred in preds:
        if pred is False:
            return False
        if pred is not True:
            kept.append(pred)
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else and_(*kept)


def _any(preds: Sequence[Pred]) -> Pred:
    kept: list[ColumnElement[bool]] = []
    for pred in preds:
        if pred is True:
            return True
        if pred is not False:
            kept.append(pred)
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else or_(*kept)


def _exists(table: FromClause, *conditions: Any, fence: bool) -> ColumnElement[bool]:
    """A probe: does `table` hold a row of this run meeting `conditions`?

    `fence` (PostgreSQL only) keeps it a per-row probe: OFFSET stops the planner
    from turning it into a semi-join or a hashed subplan, which read every row
    of the key before the first result and so defeat LIMIT.
    """
    probe = select(table.c.run_id).where(table.c.run_id == t.runs.c.id, *conditions)
    if fence:
        probe = probe.offset(0)
    return probe.correlate(t.runs).exists()


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


class _Compiler:
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
            return _all([self.node(item) for item in node.items])
        if isinstance(node, Or):
            return _any([self.node(item) for item in node.items])
        if isinstance(node, Not):
            inner = self.node(node.item)
            return (not inner) if isinstance(inner, bool) else not_(inner)
        return self.comparison(node)

    def comparison(self, c: Comparison) -> Pred:
        kind, key = c.field.kind, c.field.key
        if kind == "attribute":
            column = t.runs.c[key]
            pred = self.attribute(column, c)
            return and_(column.is_not(None), pred) if column.nullable else pred
        if kind == "tag":
            tag = t.run_tags.alias()
            pred = self.compare(tag.c.value, c.op, _texts(c.values))
            return _exists(tag, tag.c.key == key, pred, fence=self.fence)
        key_id = self.key_ids.get(key)
        if key_id is None:
            return False
        if kind == "metric":
            summary = t.metric_summaries.alias()
            pred = self.metric(summary, c)
            return _exists(summary, summary.c.key_id == key_id, pred, fence=self.fence)
        param = t.params.alias()
        pred = self.param(param, c.op, c.values)
        return _exists(param, param.c.key_id == key_id, pred, fence=self.fence)

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


def _driver_threshold(limit: int) -> int:
    """Most candidates worth reading first: past about sqrt(limit * runs), walking
    the order index and probing is cheaper; this errs towards candidates."""
    if sqlite3.sqlite_version_info < (3, 32):
        return 900  # older SQLite binds at most 999 parameters
    return min(max(20 * limit, 2000), 10_000)


def _candidates(
    conn: sa.Connection, project_id: int, tree: Node | None, compiler: _Compiler, threshold: int
) -> list[str] | None:
    """The ids of the few runs one top-level `and` term allows, or None if no term is small.

    Each try counts at most `threshold + 1` index entries, so a term that
    matches much costs little to reject.
    """
    items = tree.items if isinstance(tree, And) else (tree,)
    terms = [c for c in items if isinstance(c, Comparison)]
    # Equality is the likeliest to be selective; try it first.
    terms.sort(key=lambda c: c.op not in ("=", "in"))
    tried = 0
    for term in terms:
        driver = compiler.driver(term, project_id)
        if driver is None:
            continue
        # Counting a constant keeps it an index-only scan.
        bounded = driver.with_only_columns(sa.literal_column("1")).limit(threshold + 1).subquery()
        count = conn.execute(select(func.count()).select_from(bounded)).scalar_one()
        if count <= threshold:
            return list(dict.fromkeys(str(i) for i in conn.execute(driver).scalars()))
        tried += 1
        if tried >= _MAX_DRIVER_PROBES:
            break
    return None


# Ordering and paging


@dataclass
class _Component:
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
class _Lead:
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

    def component(self) -> _Component:
        return _Component(self.value, self.descending, False, self.kind)

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
class _Missing:
    """Runs lacking the ordering value: no row of `table` (of this run) meets `has_value`."""

    table: FromClause
    has_value: list[ColumnElement[bool]]
    # Index-only: if as many rows meet this as the project has runs, no run lacks the value.
    counted: list[ColumnElement[bool]]


@dataclass
class _Read:
    """What reading one segment needs: the connection and the page's conditions."""

    conn: sa.Connection
    project_id: int
    where: Pred
    fence: bool
    candidates: list[str] | None
    segment: _Segment

    def fetch(
        self,
        from_: FromClause,
        conditions: list[Pred],
        components: list[_Component],
        after: list[Any] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """Ids and sort values of the next `limit` rows, in `components` order."""
        runs = t.runs
        for table, onclause in self.segment.outer:
            from_ = from_.outerjoin(table, onclause)
        conditions = [runs.c.project_id == self.project_id, *conditions, self.where]
        if self.candidates is not None:
            conditions.append(runs.c.id.in_(self.candidates))
        if after is not None:
            conditions.append(_keyset(components, after))
        clause = _all(conditions)
        if clause is False:
            return []
        labels = [
            (sa.null() if c.expr is None else c.expr).label(f"s{i}")
            for i, c in enumerate(components)
        ]
        stmt = select(runs.c.id, *labels).select_from(from_)
        if clause is not True:
            stmt = stmt.where(clause)
        stmt = stmt.order_by(*[c.order() for c in components if c.expr is not None])
        return [tuple(row) for row in self.conn.execute(stmt.limit(limit))]


@dataclass
class _Segment:
    """One ordered stretch of the result."""

    lead: _Lead | None = None
    head: _Component | None = None  # the leading value, when it is a column of runs
    where: list[ColumnElement[bool]] = field(default_factory=list)  # on runs
    missing: _Missing | None = None
    rest: list[_Component] = field(default_factory=list)
    outer: list[tuple[FromClause, ColumnElement[bool]]] = field(default_factory=list)
    empty: bool = False  # the ordering key is unknown: nothing can be here
    # Which of the key's sort values (when it is not first: a param has two)
    # the leading value is; None in the segment of runs lacking the key.
    slot: int | None = None
    rest_keys: list[OrderKey] = field(default_factory=list)
    key_ids: dict[str, int] = field(default_factory=dict)

    @property
    def components(self) -> list[_Component]:
        """The sort values as a cursor records them."""
        if self.lead is not None:
            return [self.lead.component(), *self.rest]
        return self.rest if self.head is None else [self.head, *self.rest]

    @property
    def early_exit(self) -> bool:
        """Whether an index yields the rows in order, so LIMIT can stop the scan early."""
        return self.lead is not None or _index_ordered(self.components)

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

    def read(self, read: _Read, after: list[Any] | None, limit: int) -> list[tuple[Any, ...]]:
        """The segment's next `limit` rows after the cursor values `after`."""
        lead = self.lead
        if lead is not None and read.candidates is None:
            if lead.indexed:
                return self.walk(read, lead, after, limit)
            return read.fetch(lead.from_(), [*lead.conditions], self.components, after, limit)
        conditions: list[Pred] = [*self.where]
        components = self.components
        if self.missing is not None:
            m = self.missing
            conditions.append(not_(_exists(m.table, *m.has_value, fence=read.fence)))
        if lead is not None:
            # Few candidate runs: look each one's value up instead of walking the index.
            value = (
                select(lead.value)
                .where(lead.table.c.run_id == t.runs.c.id, *lead.conditions)
                .correlate(t.runs)
                .scalar_subquery()
            )
            conditions.append(value.is_not(None))
            components = [_Component(value, lead.descending, False, lead.kind), *self.rest]
        return read.fetch(t.runs, conditions, components, after, limit)

    def walk(
        self, read: _Read, lead: _Lead, after: list[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Reads the lead's index in order, a window of rows at a time.

        A window holds at most `width` index entries, so the database never sorts
        more than that on the tie-breakers. A value that fills a whole window (a
        param with few values, like lr) is read as one tie group, in the order of
        the remaining keys, from their own index when they have one.
        """
        conditions = lead.conditions
        strict_if = lead.strict_if
        if lead.loose is not None and strict_if is not None:
            # An index-only walk if the key holds no numbers (the text rows are then all rows).
            conditions = conditions if read.conn.execute(strict_if).first() else lead.loose

        def value_at(start: Any, offset: int, *, strictly: bool = False) -> Any:
            query = select(lead.value).select_from(lead.table).where(*conditions)
            if start is not None:
                query = query.where(lead.reached(start, strictly=strictly))
            ordered = lead.value.desc() if lead.descending else lead.value.asc()
            return read.conn.execute(query.order_by(ordered).offset(offset).limit(1)).scalar()

        rows: list[tuple[Any, ...]] = []
        start = value_at(None, 0) if after is None else after[0]
        width = _WINDOW
        while start is not None and len(rows) < limit:
            end = value_at(start, width)
            if end is not None and end == start:
                rows += self.tie_group(read, lead, conditions, start, after, limit - len(rows))
                start = value_at(start, 0, strictly=True)
            else:
                window: list[Pred] = [*conditions, lead.reached(start)]
                if end is not None:
                    window.append(not_(lead.reached(end)))
                rows += read.fetch(lead.from_(), window, self.components, after, limit - len(rows))
                start = end
            after = None  # the cursor only bounds the first window
            width *= 2
        return rows

    def tie_group(
        self,
        read: _Read,
        lead: _Lead,
        conditions: list[ColumnElement[bool]],
        value: Any,
        after: list[Any] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """The rows whose leading value is `value`, in the order of the rest."""
        probe = _exists(lead.table, *conditions, lead.value == value, fence=read.fence)
        rest_after = None if after is None else after[1:]
        if _index_ordered(self.rest):
            # Walk runs in (say) start_time order, probing each for the value.
            rows = read.fetch(t.runs, [probe], self.rest, rest_after, limit)
        else:
            # Order the group by the next key as a search of its own.
            rows = self.search_rest(read, probe, rest_after, limit)
        return [(row[0], value, *row[1:]) for row in rows]

    def search_rest(
        self, read: _Read, probe: ColumnElement[bool], after: list[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows meeting `probe` in the order of the keys after the first; their values
        come back laid out as `rest` lays them out."""
        segments = _segments(self.rest_keys, self.key_ids)
        width = _width(self.rest_keys[0])
        start = 0
        if after is not None:
            start, after = _enter(segments, after, width)
        where = _all([read.where, probe])
        rows: list[tuple[Any, ...]] = []
        for index in range(start, len(segments)):
            segment = segments[index]
            resume = after if index == start else None
            if segment.empty or (
                resume is None and segment.is_complete(read.conn, read.project_id)
            ):
                continue
            inner = _Read(read.conn, read.project_id, where, read.fence, None, segment)
            for row in segment.read(inner, resume, limit - len(rows)):
                values = list(row[1:])
                first: list[Any] = [None] * width
                if segment.slot is not None:
                    first[segment.slot] = values.pop(0)
                rows.append((row[0], *first, *values))
            if len(rows) >= limit:
                break
        return rows


def _width(key: OrderKey) -> int:
    """How many sort values a key has when it is not first: a param has two."""
    return 2 if key.field.kind == "param" else 1


def _enter(segments: list[_Segment], values: list[Any], width: int) -> tuple[int, list[Any]]:
    """The segment and its sort values for cursor values laid out as `rest` lays them."""
    for index, segment in enumerate(segments):
        if segment.slot is not None and not segment.empty and values[segment.slot] is not None:
            return index, [values[segment.slot], *values[width:]]
    return len(segments) - 1, values[width:]  # the last segment: runs lacking the key


def _index_ordered(components: list[_Component]) -> bool:
    """Whether an index on runs (project_id, column) yields rows in the first component's order."""
    expr = components[0].expr if components else None
    return isinstance(expr, sa.Column) and expr.table is t.runs and expr.name in _ORDERED_BY


def _keyset(components: list[_Component], values: list[Any]) -> Pred:
    """Rows after the cursor row: lexicographic over the components."""
    clause: Pred = False
    for component, value in reversed(list(zip(components, values, strict=True))):
        clause = _any([component.after(value), _all([component.equal(value), clause])])
    lead = components[0]
    if lead.expr is not None and not lead.nullable:
        # Redundant, but it lets the database start the index scan at the cursor.
        bound = lead.expr <= values[0] if lead.descending else lead.expr >= values[0]
        clause = _all([bound, clause])
    return clause


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


def _plan(order: list[OrderKey], key_ids: dict[str, int]) -> list[_Segment]:
    """The segments for an order. Their number and shape depend only on the
    order, not on which keys exist yet, so a cursor stays valid between pages."""
    return _segments(_tie_breakers(order), key_ids)


def _segments(keys: list[OrderKey], key_ids: dict[str, int]) -> list[_Segment]:
    lead, *rest = keys
    outer: list[tuple[FromClause, ColumnElement[bool]]] = []
    rest_components: list[_Component] = []
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
) -> list[_Component]:
    f, desc = key.field, key.descending
    if f.kind == "attribute":
        column = t.runs.c[f.key]
        return [_Component(column, desc, bool(column.nullable), "num" if f.numeric else "str")]
    if f.kind == "tag":
        tag = t.run_tags.alias()
        outer.append((tag, and_(tag.c.run_id == t.runs.c.id, tag.c.key == f.key)))
        return [_Component(tag.c.value, desc, True, "str")]
    key_id = key_ids.get(f.key)
    if f.kind == "metric":
        if key_id is None:
            return [_Component(None, desc, True, "num")]
        summary = t.metric_summaries.alias()
        outer.append((summary, and_(summary.c.run_id == t.runs.c.id, summary.c.key_id == key_id)))
        return [_Component(summary.c.last_value, desc, True, "num")]
    if key_id is None:
        return [_Component(None, desc, True, "num"), _Component(None, desc, True, "str")]
    param = t.params.alias()
    outer.append((param, and_(param.c.run_id == t.runs.c.id, param.c.key_id == key_id)))
    # Numbers first, then text: the text orders only the runs without a number, as
    # the segments do when a param leads (1 and 1.0 tie, whatever their text).
    text_only = sa.case((param.c.value_num.is_(None), param.c.value_str))
    return [
        _Component(param.c.value_num, desc, True, "num"),
        _Component(text_only, desc, True, "str"),
    ]


def _lead_segments(lead: OrderKey, key_ids: dict[str, int]) -> list[_Segment]:
    f, desc = lead.field, lead.descending
    if f.kind == "attribute":
        column = t.runs.c[f.key]
        head = _Component(column, desc, False, "num" if f.numeric else "str")
        if not column.nullable:
            return [_Segment(head=head, slot=0)]
        return [
            _Segment(head=head, where=[column.is_not(None)], slot=0),
            _Segment(where=[column.is_(None)]),
        ]
    if f.kind == "tag":
        tag, tags = t.run_tags.alias(), t.run_tags
        has_value = [tags.c.key == f.key]
        return [
            # No (key, value) index on tags: their order is a sort of the key's rows.
            _Segment(
                lead=_Lead(tag, [tag.c.key == f.key], tag.c.value, desc, "str", indexed=False),
                slot=0,
            ),
            _Segment(missing=_Missing(tags, has_value, has_value)),
        ]
    key_id = key_ids.get(f.key)
    if f.kind == "metric":
        if key_id is None:
            return [_Segment(empty=True, slot=0), _Segment()]
        summary, summaries = t.metric_summaries.alias(), t.metric_summaries
        has_value = [summaries.c.key_id == key_id, summaries.c.last_value.is_not(None)]
        in_lead = [summary.c.key_id == key_id, summary.c.last_value.is_not(None)]
        return [
            _Segment(lead=_Lead(summary, in_lead, summary.c.last_value, desc, "num"), slot=0),
            _Segment(missing=_Missing(summaries, has_value, has_value)),
        ]
    if key_id is None:
        return [_Segment(empty=True, slot=0), _Segment(empty=True, slot=1), _Segment()]
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
        _Segment(lead=_Lead(num, numeric, num.c.value_num, desc, "num"), slot=0),
        _Segment(
            lead=_Lead(
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
        _Segment(missing=_Missing(params, has_value, counted)),
    ]


# Cursors


def _query_hash(project_id: int, filter: str | None, order: list[OrderKey]) -> str:
    spec = [project_id, (filter or "").strip(), [[str(k.field), k.descending] for k in order]]
    raw = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _encode_cursor(digest: str, segment: int, values: list[Any]) -> str:
    raw = json.dumps({"v": _CURSOR_VERSION, "q": digest, "s": segment, "k": values})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, digest: str, segments: list[_Segment]) -> tuple[int, list[Any]]:
    bad = InvalidArgument(
        "cursor is not one this search returned: pass next_cursor unchanged, "
        "or no cursor to start from the first page"
    )
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise bad
    if data.get("q") != digest:
        raise InvalidArgument(
            "cursor belongs to a different search: use it with the same filter and "
            "order_by as the call that returned it, or drop it to start over"
        )
    segment, values = data.get("s"), data.get("k")
    if (
        not isinstance(segment, int)
        or isinstance(segment, bool)
        or not 0 <= segment < len(segments)
        or not isinstance(values, list)
        or len(values) != len(segments[segment].components)
    ):
        raise bad
    for component, value in zip(segments[segment].components, values, strict=True):
        if value is None:
            if not component.nullable:
                raise bad
        elif component.kind == "num":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
        elif not isinstance(value, str):
            raise bad
    return segment, values
