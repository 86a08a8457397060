"""Reading one segment of a search in order: index windows, tie groups, keyset resumption."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, FromClause, not_, select

from registrum.store import schema as t
from registrum.store.search.plan import Component, Lead, Segment, index_ordered, segments_for
from registrum.store.search.predicates import Pred, all_of, any_of, run_has_row
from registrum.store.search.syntax import OrderKey


@dataclass
class Reader:
    """What reading one segment needs: the connection and the page's conditions."""

    conn: sa.Connection
    project_id: int
    where: Pred
    fence: bool
    candidates: list[str] | None
    segment: Segment
    window: int  # index entries in the first window of an ordered walk; doubles after

    def read(self, after: list[Any] | None, limit: int) -> list[tuple[Any, ...]]:
        """The segment's next `limit` rows after the cursor values `after`."""
        segment = self.segment
        lead = segment.lead
        if lead is not None and self.candidates is None:
            if lead.indexed:
                return self.walk(lead, after, limit)
            return self.fetch(lead.from_(), [*lead.conditions], segment.components, after, limit)
        conditions: list[Pred] = [*segment.where]
        components = segment.components
        if segment.missing is not None:
            m = segment.missing
            conditions.append(not_(run_has_row(m.table, *m.has_value, fence=self.fence)))
        if lead is not None:
            # Few candidate runs: look each one's value up instead of walking the index.
            value = (
                select(lead.value)
                .where(lead.table.c.run_id == t.runs.c.id, *lead.conditions)
                .correlate(t.runs)
                .scalar_subquery()
            )
            conditions.append(value.is_not(None))
            components = [Component(value, lead.descending, False, lead.kind), *segment.rest]
        return self.fetch(t.runs, conditions, components, after, limit)

    def fetch(
        self,
        from_: FromClause,
        conditions: list[Pred],
        components: list[Component],
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
        clause = all_of(conditions)
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

    def walk(self, lead: Lead, after: list[Any] | None, limit: int) -> list[tuple[Any, ...]]:
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
            conditions = conditions if self.conn.execute(strict_if).first() else lead.loose

        def value_at(start: Any, offset: int, *, strictly: bool = False) -> Any:
            query = select(lead.value).select_from(lead.table).where(*conditions)
            if start is not None:
                query = query.where(lead.reached(start, strictly=strictly))
            ordered = lead.value.desc() if lead.descending else lead.value.asc()
            return self.conn.execute(query.order_by(ordered).offset(offset).limit(1)).scalar()

        components = self.segment.components
        rows: list[tuple[Any, ...]] = []
        start = value_at(None, 0) if after is None else after[0]
        width = self.window
        while start is not None and len(rows) < limit:
            end = value_at(start, width)
            if end is not None and end == start:
                rows += self.tie_group(lead, conditions, start, after, limit - len(rows))
                start = value_at(start, 0, strictly=True)
            else:
                window: list[Pred] = [*conditions, lead.reached(start)]
                if end is not None:
                    window.append(not_(lead.reached(end)))
                rows += self.fetch(lead.from_(), window, components, after, limit - len(rows))
                start = end
            after = None  # the cursor only bounds the first window
            width *= 2
        return rows

    def tie_group(
        self,
        lead: Lead,
        conditions: list[ColumnElement[bool]],
        value: Any,
        after: list[Any] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """The rows whose leading value is `value`, in the order of the rest."""
        probe = run_has_row(lead.table, *conditions, lead.value == value, fence=self.fence)
        rest_after = None if after is None else after[1:]
        rest = self.segment.rest
        if index_ordered(rest):
            # Walk runs in (say) start_time order, probing each for the value.
            rows = self.fetch(t.runs, [probe], rest, rest_after, limit)
        else:
            # Order the group by the next key as a search of its own.
            rows = self.search_rest(probe, rest_after, limit)
        return [(row[0], value, *row[1:]) for row in rows]

    def search_rest(
        self, probe: ColumnElement[bool], after: list[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows meeting `probe` in the order of the keys after the first; their values
        come back laid out as `rest` lays them out."""
        rest_keys = self.segment.rest_keys
        segments = segments_for(rest_keys, self.segment.key_ids)
        width = _width(rest_keys[0])
        start = 0
        if after is not None:
            start, after = _enter(segments, after, width)
        where = all_of([self.where, probe])
        rows: list[tuple[Any, ...]] = []
        for index in range(start, len(segments)):
            segment = segments[index]
            resume = after if index == start else None
            if segment.empty or (
                resume is None and segment.is_complete(self.conn, self.project_id)
            ):
                continue
            inner = Reader(
                self.conn, self.project_id, where, self.fence, None, segment, self.window
            )
            for row in inner.read(resume, limit - len(rows)):
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


def _enter(segments: list[Segment], values: list[Any], width: int) -> tuple[int, list[Any]]:
    """The segment and its sort values for cursor values laid out as `rest` lays them."""
    for index, segment in enumerate(segments):
        if segment.slot is not None and not segment.empty and values[segment.slot] is not None:
            return index, [values[segment.slot], *values[width:]]
    return len(segments) - 1, values[width:]  # the last segment: runs lacking the key


def _keyset(components: list[Component], values: list[Any]) -> Pred:
    """Rows after the cursor row: lexicographic over the components."""
    clause: Pred = False
    for component, value in reversed(list(zip(components, values, strict=True))):
        clause = any_of([component.after(value), all_of([component.equal(value), clause])])
    lead = components[0]
    if lead.expr is not None and not lead.nullable:
        # Redundant, but it lets the database start the index scan at the cursor.
        bound = lead.expr <= values[0] if lead.descending else lead.expr >= values[0]
        clause = all_of([bound, clause])
    return clause
