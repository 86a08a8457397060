"""Metric series: idempotent columnar batch ingestion, summaries, history and downsampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from registrum import validation as v
from registrum.entities import IngestResult, MetricHistory, MetricSummary
from registrum.errors import InvalidArgument, MetricNotFound, RunNotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.tracking.runs import RunsMixin

MAX_BATCH = 1_000_000
# Decimal steps keep at most 18 digits after the point (Neptune's decimal(18, 6) needs 6).
MAX_STEP_SCALE = 18
# Bounds of one `metric_histories` call (the charts of a run page or a comparison).
MAX_HISTORY_RUNS = 50
MAX_HISTORY_KEYS = 200
MAX_HISTORY_POINTS = 100_000
_STEP = np.dtype("<i8")
_FLOAT = np.dtype("<f8")
_NUMBER = (int, float)


def _as_array(
    items: Any, dtype: np.dtype[Any], what: str, *, integer: bool
) -> np.ndarray[Any, Any]:
    if isinstance(items, np.ndarray):
        ok = items.dtype.kind in ("i", "u") if integer else items.dtype.kind in ("i", "u", "f")
        if not ok or items.ndim != 1:
            raise InvalidArgument(
                f"{what} must be a flat array of {'integers' if integer else 'numbers'}"
            )
        return items.astype(dtype, copy=False)
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise InvalidArgument(f"{what} must be a list")
    kinds = (int,) if integer else _NUMBER
    # The set of item types, built in C, clears a plain list at once; only a list
    # holding other types (subclasses, bools, strings) is walked item by item.
    if not set(map(type, items)).issubset(kinds):
        for i, item in enumerate(items):
            if type(item) not in kinds and (not isinstance(item, kinds) or isinstance(item, bool)):
                kind = "an integer" if integer else "a number"
                raise InvalidArgument(f"{what}[{i}] is {item!r}; it must be {kind}", index=i)
    try:
        return np.asarray(items, dtype=dtype)
    except OverflowError:
        raise InvalidArgument(f"{what} holds a value that does not fit in 64 bits") from None


def _group(keys: Sequence[str]) -> dict[str, Any]:
    """Each distinct key (validated, in order of first appearance) and its points' indices.

    The indices are ascending (logging order): an index array, or `slice(None)` when
    the batch holds a single key.
    """
    distinct = list(dict.fromkeys(keys))
    for key in distinct:
        try:
            v.key(key, "keys")
        except InvalidArgument:
            v.key(key, f"keys[{keys.index(key)}]")  # the first occurrence, as the message says
    if len(distinct) <= 1:
        return dict.fromkeys(distinct, slice(None))
    code = {key: i for i, key in enumerate(distinct)}
    codes = np.fromiter(map(code.__getitem__, keys), dtype=np.intp, count=len(keys))
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(distinct)))[:-1]
    return dict(zip(distinct, np.split(order, bounds), strict=True))


class MetricsMixin(RunsMixin, StoreBase):
    def log_metrics(
        self,
        run_id: str,
        *,
        seq: int,
        keys: Sequence[str],
        steps: Sequence[int] | np.ndarray[Any, Any],
        values: Sequence[float] | np.ndarray[Any, Any],
        timestamps: Sequence[float] | np.ndarray[Any, Any] | None = None,
    ) -> IngestResult:
        """Stores one columnar batch of points; a batch whose `seq` was stored before is skipped.

        `keys[i]`, `steps[i]`, `values[i]`, `timestamps[i]` make point i. NaN and
        ±inf are kept. The whole batch is validated before anything is written.
        """
        v.run_id(run_id)
        v.integer(seq, "seq", minimum=0, bits=64)
        if not isinstance(keys, Sequence) or isinstance(keys, str):
            raise InvalidArgument("keys must be a list of metric names")
        n = len(keys)
        if n > MAX_BATCH:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH} points, got {n}")
        step_arr = _as_array(steps, _STEP, "steps", integer=True)
        value_arr = _as_array(values, _FLOAT, "values", integer=False)
        if timestamps is None:
            time_arr = np.full(n, now(), dtype=_FLOAT)
        else:
            time_arr = _as_array(timestamps, _FLOAT, "timestamps", integer=False)
            if not bool(np.isfinite(time_arr).all()):
                i = int(np.flatnonzero(~np.isfinite(time_arr))[0])
                raise InvalidArgument(
                    f"timestamps[{i}] is {time_arr[i]}; timestamps must be finite Unix times",
                    index=i,
                )
        if not (len(step_arr) == len(value_arr) == len(time_arr) == n):
            raise InvalidArgument(
                f"keys, steps, values and timestamps must be equally long; got "
                f"{n}, {len(step_arr)}, {len(value_arr)}, {len(time_arr)}"
            )
        groups = _group(keys)

        with self._tx() as conn:
            # Batches of one run take turns, so that merging summaries (read, then
            # upsert) loses no update: PostgreSQL locks the run's row here; SQLite's
            # BEGIN IMMEDIATE already serialises writers.
            row = conn.execute(
                select(t.runs).where(t.runs.c.id == run_id).with_for_update(key_share=True)
            ).first()
            if row is None:
                raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)
            self._require(conn, row.project_id, "editor")
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount.
            inserted = conn.execute(
                self._insert(t.metric_batches)
                .values(run_id=run_id, seq=seq, points=n, received_at=now())
                .on_conflict_do_nothing(index_elements=["run_id", "seq"])
                .returning(t.metric_batches.c.seq)
            ).first()
            if inserted is None:
                return IngestResult(run_id=run_id, seq=seq, points=n, duplicate=True)
            if n == 0:
                return IngestResult(run_id=run_id, seq=seq, points=0, duplicate=False)
            ids = self._key_ids(conn, row.project_id, groups)
            chunks = []
            fresh: dict[int, dict[str, Any]] = {}
            for key, index in groups.items():
                st, va, ti = step_arr[index], value_arr[index], time_arr[index]
                key_id = ids[key]
                chunks.append(
                    {
                        "run_id": run_id,
                        "key_id": key_id,
                        "points": len(st),
                        "min_step": int(st.min()),
                        "max_step": int(st.max()),
                        "step_data": st.tobytes(),
                        "value_data": va.tobytes(),
                        "time_data": ti.tobytes(),
                    }
                )
                fresh[key_id] = _summarise(st, va, ti)
            conn.execute(t.metric_chunks.insert(), chunks)
            self._merge_summaries(conn, run_id, fresh)
            keys_logged = sorted(groups)
            self._audit_run(
                conn,
                row,
                "metrics.logged",
                after={"seq": seq, "points": n, "keys": keys_logged[:50], "key_count": len(groups)},
            )
        return IngestResult(run_id=run_id, seq=seq, points=n, duplicate=False)

    def set_metric_step_scale(self, run_id: str, key: str, scale: int) -> None:
        """Declares that the steps of `key` in this run are logged as `step × 10**scale`
        (decimal steps, as Neptune's), so that every reader gets the decimal steps back.

        Declared before the series' first point; declaring the same scale again changes
        nothing, so an import that resumes may repeat it. Scale 0 (integer steps) is every
        series' default and needs no declaration.
        """
        v.run_id(run_id)
        v.key(key, "metric key")
        v.integer(scale, "scale", minimum=0)
        if scale > MAX_STEP_SCALE:
            raise InvalidArgument(f"scale must be at most {MAX_STEP_SCALE}, got {scale}")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            key_id = self._key_ids(conn, row.project_id, [key])[key]
            s = t.metric_step_scales.c
            known = conn.execute(
                select(s.scale).where(s.run_id == run_id, s.key_id == key_id)
            ).scalar()
            if known == scale or (known is None and scale == 0):
                return  # declared already, or the default
            if known is not None or self._has_points(conn, run_id, key_id):
                raise InvalidArgument(
                    f"metric {key!r} of run {run_id!r} already holds points logged with step "
                    f"scale {known or 0}; a series keeps the scale of its first point: log "
                    "the other steps under another key"
                )
            conn.execute(
                t.metric_step_scales.insert().values(run_id=run_id, key_id=key_id, scale=scale)
            )
            self._audit_run(conn, row, "metrics.step_scale_set", after={"key": key, "scale": scale})

    def _has_points(self, conn: Any, run_id: str, key_id: int) -> bool:
        c = t.metric_summaries.c
        found = conn.execute(select(c.points).where(c.run_id == run_id, c.key_id == key_id)).first()
        return found is not None

    def _step_scale(self, conn: Any, run_id: str, key_id: int) -> int:
        s = t.metric_step_scales.c
        scale = conn.execute(select(s.scale).where(s.run_id == run_id, s.key_id == key_id)).scalar()
        return int(scale or 0)

    def _merge_summaries(self, conn: Any, run_id: str, fresh: dict[int, dict[str, Any]]) -> None:
        s = t.metric_summaries
        old = {
            int(r.key_id): r
            for r in conn.execute(select(s).where(s.c.run_id == run_id, s.c.key_id.in_(fresh)))
        }
        rows = []
        for key_id, new in fresh.items():
            prev = old.get(key_id)
            if prev is not None:
                if prev.last_step > new["last_step"]:
                    new["last_value"], new["last_step"], new["last_time"] = (
                        prev.last_value,
                        prev.last_step,
                        prev.last_time,
                    )
                new["min_value"] = _pick(min, prev.min_value, new["min_value"])
                new["max_value"] = _pick(max, prev.max_value, new["max_value"])
                new["points"] += prev.points
            rows.append({"run_id": run_id, "key_id": key_id, **new})
        columns = ("last_value", "last_step", "last_time", "min_value", "max_value", "points")
        conn.execute(self._upsert(s, ("run_id", "key_id"), columns), rows)

    def _read_chunks(self, conn: Any, run_id: str, key_id: int) -> list[Any]:
        """(steps, values, times) bytes of each chunk, in logging order."""
        if conn.dialect.name == "postgresql":
            # bytea in psycopg's binary format: text format doubles the bytes
            # as hex and costs more than the rest of the read.
            cursor = conn.connection.driver_connection.cursor(binary=True)
            try:
                cursor.execute(
                    "SELECT step_data, value_data, time_data FROM metric_chunks "
                    "WHERE run_id = %s AND key_id = %s ORDER BY id",
                    (run_id, key_id),
                )
                return list(cursor.fetchall())
            finally:
                cursor.close()
        c = t.metric_chunks.c
        query = (
            select(c.step_data, c.value_data, c.time_data)
            .where(c.run_id == run_id, c.key_id == key_id)
            .order_by(c.id)
        )
        return list(conn.execute(query).all())

    def metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        return self.get_run(run_id).metrics

    def metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricHistory:
        """A metric's points ordered by step (ties in logging order).

        With `max_points`, a longer series is cut into `max_points // 2` buckets
        and each bucket keeps its minimum and its maximum point, so spikes survive.
        """
        v.run_id(run_id)
        v.key(key, "metric key")
        if max_points is not None:
            v.integer(max_points, "max_points", minimum=2)
        with self._read() as conn:
            row = self._run_row(conn, run_id, need="viewer")
            ids = self._key_ids(conn, row.project_id, [key], create=False)
            chunks = self._read_chunks(conn, run_id, ids[key]) if key in ids else []
            scale = self._step_scale(conn, run_id, ids[key]) if chunks else 0
        if not chunks:
            raise MetricNotFound(f"run {run_id!r} has no metric {key!r}", run_id=run_id, key=key)
        return _history(run_id, key, chunks, max_points, scale)

    def metric_histories(
        self, run_ids: Sequence[str], keys: Sequence[str], *, max_points: int
    ) -> tuple[list[MetricHistory], list[dict[str, str]]]:
        """The downsampled histories of every run × key, read in one transaction (for charts).

        Returns the histories found, in the order of `run_ids` then `keys`, and the
        `{"run_id", "key"}` pairs where the run has no such metric. Each history is
        what `metric_history(run_id, key, max_points=max_points)` returns.
        """
        if isinstance(run_ids, str) or not isinstance(run_ids, Sequence) or not run_ids:
            raise InvalidArgument("run_ids must be a non-empty list of run ids")
        if isinstance(keys, str) or not isinstance(keys, Sequence) or not keys:
            raise InvalidArgument("keys must be a non-empty list of metric names")
        if len(run_ids) > MAX_HISTORY_RUNS:
            raise InvalidArgument(f"at most {MAX_HISTORY_RUNS} runs at once, got {len(run_ids)}")
        if len(keys) > MAX_HISTORY_KEYS:
            raise InvalidArgument(f"at most {MAX_HISTORY_KEYS} keys at once, got {len(keys)}")
        v.integer(max_points, "max_points", minimum=2)
        if max_points > MAX_HISTORY_POINTS:
            raise InvalidArgument(
                f"max_points must be at most {MAX_HISTORY_POINTS} for several series at "
                f"once, got {max_points}; fetch one full series with its own request"
            )
        run_ids = list(dict.fromkeys(v.run_id(r) for r in run_ids))
        keys = list(dict.fromkeys(v.key(k, "metric key") for k in keys))
        found: list[MetricHistory] = []
        missing: list[dict[str, str]] = []
        with self._read() as conn:
            rows = [self._run_row(conn, run_id, need="viewer") for run_id in run_ids]
            for row in rows:
                ids = self._key_ids(conn, row.project_id, keys, create=False)
                for key in keys:
                    # One series at a time: only its raw points are ever held in memory.
                    chunks = self._read_chunks(conn, row.id, ids[key]) if key in ids else []
                    if chunks:
                        scale = self._step_scale(conn, row.id, ids[key])
                        found.append(_history(row.id, key, chunks, max_points, scale))
                    else:
                        missing.append({"run_id": row.id, "key": key})
        return found, missing


def _history(
    run_id: str, key: str, chunks: list[Any], max_points: int | None, scale: int = 0
) -> MetricHistory:
    """A series from its chunks: ordered by step, then cut to `max_points` (min and max per
    bucket) when it is longer; steps stored with a decimal `scale` come back as decimals."""
    steps = _concat([ch[0] for ch in chunks], _STEP)
    values = _concat([ch[1] for ch in chunks], _FLOAT)
    times = _concat([ch[2] for ch in chunks], _FLOAT)
    if len(steps) > 1 and not bool(np.all(steps[1:] >= steps[:-1])):
        order = np.argsort(steps, kind="stable")
        steps, values, times = steps[order], values[order], times[order]
    total = len(steps)
    downsampled = max_points is not None and total > max_points
    if downsampled:
        assert max_points is not None
        keep = _minmax_indices(values, max_points // 2)
        steps, values, times = steps[keep], values[keep], times[keep]
    if scale:
        # Both exact in a double (steps below 2**53; 10**18 is): the quotient is the double
        # nearest the decimal step, the same as float(Decimal(step)).
        steps = steps.astype(_FLOAT) / float(10**scale)
    return MetricHistory(
        run_id=run_id,
        key=key,
        steps=steps,
        values=values,
        timestamps=times,
        total=total,
        downsampled=downsampled,
        step_scale=scale,
    )


def _concat(parts: list[bytes], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    if len(parts) == 1:
        return np.frombuffer(parts[0], dtype=dtype)
    return np.frombuffer(b"".join(parts), dtype=dtype)


def _summarise(
    steps: np.ndarray[Any, Any], values: np.ndarray[Any, Any], times: np.ndarray[Any, Any]
) -> dict[str, Any]:
    # The last point is the one at the highest step; among equal steps, the one logged last.
    last = len(steps) - 1 - int(np.argmax(steps[::-1]))
    finite_or_inf = values[~np.isnan(values)]
    last_value = float(values[last])
    return {
        "last_value": None if math.isnan(last_value) else last_value,
        "last_step": int(steps[last]),
        "last_time": float(times[last]),
        "min_value": float(finite_or_inf.min()) if len(finite_or_inf) else None,
        "max_value": float(finite_or_inf.max()) if len(finite_or_inf) else None,
        "points": len(steps),
    }


def _pick(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))


def _minmax_indices(values: np.ndarray[Any, Any], buckets: int) -> np.ndarray[Any, Any]:
    """Indices of each equal-count bucket's min and max (NaN only where a bucket is all NaN)."""
    n = len(values)
    width = -(-n // buckets)
    rows = -(-n // width)
    pad = rows * width - n
    low = np.where(np.isnan(values), np.inf, values)
    high = np.where(np.isnan(values), -np.inf, values)
    if pad:
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
    base = np.arange(rows) * width
    mins = base + np.argmin(low.reshape(rows, width), axis=1)
    maxs = base + np.argmax(high.reshape(rows, width), axis=1)
    keep = np.unique(np.concatenate([mins, maxs]))
    return keep[keep < n]
