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

This module chooses the plan and pages; the filter's SQL is built in
`search_predicates`, the order's segments in `search_plan`, reading them in
`search_read`, and cursors in `search_cursor`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select

from registrum.errors import InvalidArgument
from registrum.store import schema as t
from registrum.store.search.cursor import decode_cursor, encode_cursor, query_hash
from registrum.store.search.parser import parse_filter, parse_order_by
from registrum.store.search.plan import plan
from registrum.store.search.predicates import FilterCompiler, Pred, all_of
from registrum.store.search.read import Reader
from registrum.store.search.syntax import And, Comparison, Field, Node, Not, Or

MAX_LIMIT = 1000
_MAX_DRIVER_PROBES = 2
_WINDOW = 2000  # index entries in the first window of an ordered walk; doubles after
_MAX_RUNS_COUNTED = 50_000  # runs index entries counted to weigh a walk against candidates


def search_run_ids(
    conn: sa.Connection,
    project_id: int,
    *,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int = 100,
    cursor: str | None = None,
    deleted: str = "exclude",
    top_level: bool = False,
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
        deleted: soft-deleted runs are left out ("exclude"), the only ones ("only"),
            or found with the others ("include").
        top_level: only runs without a parent (no sweep trials, no child runs).

    Raises:
        FilterSyntaxError: the filter does not parse; `position` says where.
        InvalidArgument: bad order_by, limit or cursor.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    tree = parse_filter(filter)
    order = parse_order_by(order_by)
    # A cursor belongs to its query: the runs it walks (top-level or all) are part of it.
    digest = query_hash(project_id, f"{filter or ''}\0top-level" if top_level else filter, order)

    names = {f.key for f in _fields(tree) if f.kind in ("metric", "param")}
    names.update(k.field.key for k in order if k.field.kind in ("metric", "param"))
    key_ids = _resolve_keys(conn, project_id, names)
    sqlite = conn.dialect.name == "sqlite"

    segments = plan(order, key_ids)
    start_segment, after = 0, None
    if cursor is not None:
        start_segment, after = decode_cursor(cursor, digest, segments)

    compiler = FilterCompiler(key_ids, sqlite=sqlite, fence=not sqlite)
    lifecycle = _lifecycle(deleted)
    if top_level:
        lifecycle = all_of([lifecycle, t.runs.c.parent_id.is_(None)])
    where = all_of([compiler.node(tree), lifecycle])
    if where is False:
        return [], None
    # Probes that PostgreSQL may hash, for segments that must read every run anyway.
    unfenced = (
        where
        if sqlite
        else all_of([FilterCompiler(key_ids, sqlite=False, fence=False).node(tree), lifecycle])
    )
    walkable = bool(segments) and segments[0].lead is not None and segments[0].lead.indexed
    candidates = _candidates(
        conn, project_id, tree, compiler, _driver_threshold(limit), limit if walkable else None
    )
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
        reader = Reader(
            conn, project_id, where if fence else unfenced, fence, candidates, segment, _WINDOW
        )
        found.extend((index, row) for row in reader.read(resume, wanted - len(found)))
        if len(found) >= wanted:
            break

    ids = [str(row[0]) for _, row in found[:limit]]
    if len(found) <= limit:
        return ids, None
    index, row = found[limit - 1]
    return ids, encode_cursor(digest, index, list(row[1:]))


def _lifecycle(deleted: str) -> Pred:
    """Which runs a search sees by their soft deletion."""
    if deleted == "exclude":
        return t.runs.c.deleted_at.is_(None)
    if deleted == "only":
        return t.runs.c.deleted_at.is_not(None)
    if deleted == "include":
        return True
    raise InvalidArgument(f"deleted must be 'exclude', 'only' or 'include', got {deleted!r}")


def _fields(node: Node | None) -> Iterator[Field]:
    """Every field the filter compares."""
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


def _driver_threshold(limit: int) -> int:
    """Most candidates worth reading first: past about sqrt(limit * runs), walking
    the order index and probing is cheaper; this errs towards candidates."""
    if sqlite3.sqlite_version_info < (3, 32):
        return 900  # older SQLite binds at most 999 parameters
    return min(max(20 * limit, 2000), 10_000)


def _walk_is_cheaper(conn: sa.Connection, project_id: int, count: int, limit: int) -> bool:
    """Whether walking the order's index beats reading `count` candidates: a walk probes
    about limit * runs / count entries for a page, the candidates cost about `count`, so
    it wins in a project of fewer than count² / limit runs. Those are counted on the runs
    index, at most `_MAX_RUNS_COUNTED` (past that the candidates are kept, as they were
    before the count)."""
    if count <= limit:
        return False
    enough = min(count * count // limit, 20 * count, _MAX_RUNS_COUNTED)
    r = t.runs.c
    bounded: sa.Select[Any] = (
        select(sa.literal_column("1")).where(r.project_id == project_id).limit(enough)
    )
    runs = conn.execute(select(func.count()).select_from(bounded.subquery())).scalar_one()
    return int(runs) < enough


def _candidates(
    conn: sa.Connection,
    project_id: int,
    tree: Node | None,
    compiler: FilterCompiler,
    threshold: int,
    walk_limit: int | None = None,
) -> list[str] | None:
    """The ids of the few runs one top-level `and` term allows, or None if no term is small.

    Each try counts at most `threshold + 1` index entries, so a term that
    matches much costs little to reject. With `walk_limit` (the order's index
    can be walked for a page of that many), a term that matches more than a
    page is also refused when walking is cheaper (see `_walk_is_cheaper`).
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
            if walk_limit is not None and _walk_is_cheaper(conn, project_id, count, walk_limit):
                return None
            return list(dict.fromkeys(str(i) for i in conn.execute(driver).scalars()))
        tried += 1
        if tried >= _MAX_DRIVER_PROBES:
            break
    return None
