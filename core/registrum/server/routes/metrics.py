"""Metric ingestion (columnar, batched, idempotent) and history.

Ingestion skips pydantic: a batch holds up to a million points, and parsing it
with orjson and checking it once in the service layer is what keeps the
server above a few hundred thousand points a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from registrum.entities import decode_floats
from registrum.errors import InvalidArgument
from registrum.server.deps import StoreDep
from registrum.server.responses import JSON

router = APIRouter(tags=["metrics"])

_FIELDS = {"seq", "keys", "steps", "values", "timestamps"}


def _floats(items: Any, what: str) -> Any:
    """Numbers, with the markers "NaN", "Infinity", "-Infinity" decoded; the
    service layer checks everything else and names the bad index."""
    if not isinstance(items, list):
        return items
    try:
        return decode_floats(items)
    except ValueError as exc:
        i, x = exc.args
        raise InvalidArgument(
            f"{what}[{i}] is {x!r}; it must be a number "
            '(non-finite values are sent as "NaN", "Infinity", "-Infinity")',
            index=i,
        ) from None


@router.post("/runs/{run_id}/metrics")
async def log_metrics(run_id: str, request: Request, store: StoreDep) -> JSON:
    """Body: `{"seq": 0, "keys": [...], "steps": [...], "values": [...], "timestamps": [...]}`."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidArgument(f"unknown fields {sorted(unknown)}; expected {sorted(_FIELDS)}")
    if "seq" not in body or "keys" not in body or "steps" not in body or "values" not in body:
        raise InvalidArgument("a metric batch needs seq, keys, steps and values")
    values = _floats(body["values"], "values")
    timestamps = body.get("timestamps")
    if timestamps is not None:
        timestamps = _floats(timestamps, "timestamps")
    result = await run_in_threadpool(
        store.log_metrics,
        run_id,
        seq=body["seq"],
        keys=body["keys"],
        steps=body["steps"],
        values=values,
        timestamps=timestamps,
    )
    return JSON(result)


@router.get("/runs/{run_id}/metrics")
def summaries(run_id: str, store: StoreDep) -> JSON:
    return JSON({k: m.to_dict() for k, m in store.metric_summaries(run_id).items()})


@router.get("/runs/{run_id}/metrics/{key:path}")
def history(run_id: str, key: str, store: StoreDep, max_points: int | None = None) -> Response:
    h = store.metric_history(run_id, key, max_points=max_points)
    values = h.values
    if not bool(np.isfinite(values).all()):
        values = h.to_dict()["values"]
    body = {
        "run_id": h.run_id,
        "key": h.key,
        "total": h.total,
        "downsampled": h.downsampled,
        "steps": h.steps,
        "values": values,
        "timestamps": h.timestamps,
    }
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )
