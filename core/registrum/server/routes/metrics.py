"""Metric ingestion (columnar, batched, idempotent) and history.

Ingestion skips pydantic: a batch holds up to a million points, and parsing it
with orjson and checking it once in the service layer is what keeps the
server above a few hundred thousand points a second.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from registrum.entities import MetricHistory, decode_floats
from registrum.errors import InvalidArgument
from registrum.server.deps import StoreDep
from registrum.server.responses import JSON
from registrum.server.routes._schemas import Body

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
    if not result.duplicate:
        request.app.state.telemetry.ingested(result.points)
    return JSON(result)


class StepScale(Body):
    key: Any
    scale: Any


@router.put("/runs/{run_id}/metric-step-scales", status_code=204)
def set_step_scale(run_id: str, body: StepScale, store: StoreDep) -> Response:
    """Declares that metric `key` logs its steps as `step × 10**scale` (decimal steps)."""
    store.set_metric_step_scale(run_id, body.key, body.scale)
    return Response(status_code=204)


@router.get("/runs/{run_id}/metrics")
def summaries(run_id: str, store: StoreDep) -> JSON:
    return JSON({k: m.to_dict() for k, m in store.metric_summaries(run_id).items()})


def _history_body(h: MetricHistory) -> dict[str, Any]:
    """A history for JSON: numpy arrays as they are (orjson writes them fast), non-finite
    values as their markers."""
    values = h.values
    if not bool(np.isfinite(values).all()):
        values = h.to_dict()["values"]
    return {
        "run_id": h.run_id,
        "key": h.key,
        "total": h.total,
        "downsampled": h.downsampled,
        "step_scale": h.step_scale,
        "steps": h.steps,
        "values": values,
        "timestamps": h.timestamps,
    }


def _numpy_json(body: Any) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


@router.get("/metrics/histories")
def histories(
    store: StoreDep,
    run_id: Annotated[list[str], Query(description="a run id; repeat for several runs")],
    key: Annotated[list[str], Query(description="a metric key; repeat for several keys")],
    max_points: Annotated[int, Query(description="points per series at most (2-100000)")] = 1000,
) -> Response:
    """Several downsampled series at once, every `run_id` × `key` (the charts of a run page
    or a comparison): `{"items": [history, ...], "missing": [{"run_id", "key"}, ...]}`,
    each history as `GET /runs/{run_id}/metrics/{key}?max_points=...` answers it; a run
    without one of the keys is listed in `missing`."""
    found, missing = store.metric_histories(run_id, key, max_points=max_points)
    return _numpy_json({"items": [_history_body(h) for h in found], "missing": missing})


@router.get("/runs/{run_id}/metrics/{key:path}")
def history(run_id: str, key: str, store: StoreDep, max_points: int | None = None) -> Response:
    return _numpy_json(_history_body(store.metric_history(run_id, key, max_points=max_points)))
