"""`registrum serve NAME@ALIAS`: a model version behind an HTTP scoring endpoint that speaks
MLflow's scoring protocol, and follows its alias.

* `POST /invocations`: `dataframe_split`, `dataframe_records`, `instances` or `inputs` in
  JSON, or `text/csv`; answers `{"predictions": [...]}` (what `mlflow models serve` does).
* `POST /reload`: a Registrum webhook (`alias.moved`, signed with its secret) makes the
  server look where the alias points at once.
* `GET /ping`, `GET /health`: 200 while a model is loaded (`/health` also says when the last
  attempt to load a newer version failed, and why); `GET /version`: the version served;
  `GET /metrics`: Prometheus text.
* The alias is followed: every `poll_interval` seconds the store is asked where it points;
  when it moved, the new version is loaded and checked with a prediction on an example built
  from its signature in the background, then swapped in at once. A request holds the model
  it started with, so requests in flight finish on the old version and none fails during the
  swap. A version that fails to load or to predict is not swapped in.
* Bad input is a 400 that says what was wrong, a body above the limit a 413, a model that
  raises a 500 naming the error class; the server stays up.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from registrum.errors import InvalidArgument, RegistrumError
from registrum.model import Model, load_model, signature_inputs

log = logging.getLogger("registrum.serve")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Served:
    """The version being served, and the work of following its alias."""

    ref: str
    store: str | None = None
    poll_interval: float = 5.0
    model: Model | None = None
    problem: str | None = None  # why the last newer version was not swapped in
    switched_at: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"requests": 0, "errors": 0})
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _checking: threading.Lock = field(default_factory=threading.Lock)  # one check at a time
    _refused: int | None = None  # the version that failed: not tried again on every poll

    def start(self) -> None:
        """Loads the version the reference names now (raising when it cannot), then
        follows the alias in a background thread."""
        self.model = _checked(load_model(self.ref, store=self.store))
        log.info("serving %s (%s)", self.model.ref, self.ref)
        threading.Thread(target=self._follow, name="registrum-serve-follow", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.check()

    def check(self) -> bool:
        """Asks where the reference points now; loads, checks and swaps in a new version.
        Answers whether it switched."""
        with self._checking:
            return self._check()

    def _check(self) -> bool:
        from registrum.client.api import Client

        try:
            with Client(self.store) as client:
                wanted = client.model_version(self.ref)
        except RegistrumError as exc:
            self.problem = f"cannot ask the store where {self.ref} points: {exc}"
            log.warning("%s", self.problem)
            return False
        current = self.model
        if current is not None and wanted.version == current.version:
            self.problem = self._refused = None  # the alias is back where it is served
            return False
        if wanted.version == self._refused:
            return False  # said already (`problem`); tried again when the alias moves on
        try:
            fresh = _checked(load_model(f"{wanted.model}@{wanted.version}", store=self.store))
        except Exception as exc:
            self.problem = (
                f"{wanted.ref} was not swapped in: {type(exc).__name__}: {exc}; still serving "
                f"{current.ref if current else 'nothing'}"
            )
            log.error("%s", self.problem)
            self._refused = wanted.version
            return False
        self.model, self.problem, self.switched_at = fresh, None, time.time()
        self._refused = None
        log.info("%s now serves %s", self.ref, fresh.ref)
        return True

    def observe(self, seconds: float, failed: bool) -> None:
        with self._lock:
            self.counts["requests"] += 1
            self.counts["errors"] += int(failed)
            self.latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.latency[i] += 1
                    break
            else:
                self.latency[-1] += 1


def _checked(model: Model) -> Model:
    """The model, once it predicted on an example built from its signature (where it has
    one): a version that cannot predict is not served."""
    example = example_input(model.signature)
    if example is not None:
        model.predict(example)
    return model


def example_input(signature: Mapping[str, Any] | None) -> Any:
    """One row of zeros the signature accepts: named columns, or an array of its shape."""
    kind, inputs = signature_inputs(signature)
    if kind == "columns":
        return [{str(i["name"]): _zero(i.get("dtype") or i.get("type")) for i in inputs}]
    if kind == "array":
        import numpy as np

        shape = [1, *(1 if d is None else int(d) for d in inputs[0]["shape"][1:])]
        dtype = str(inputs[0].get("dtype") or "float32").removeprefix("torch.")
        try:
            return np.zeros(shape, dtype=dtype)
        except TypeError:
            return np.zeros(shape, dtype="float32")
    return None


def _zero(kind: Any) -> Any:
    text = str(kind or "").lower()
    if "int" in text:
        return 0
    if "bool" in text:
        return False
    if "object" in text or "str" in text or text == "c":
        return ""
    return 0.0


# -- the scoring protocol ---------------------------------------------------------------------


def parse_request(body: bytes, content_type: str) -> Any:
    """The input of an MLflow scoring request, as `Model.predict` takes it."""
    if content_type.startswith("text/csv"):
        import pandas as pd

        try:
            return pd.read_csv(io.BytesIO(body))
        except Exception as exc:
            raise InvalidArgument(f"the CSV body does not parse: {exc}") from None
    import orjson

    try:
        payload = orjson.loads(body)
    except ValueError:
        raise InvalidArgument(
            "the body is not JSON: send dataframe_split, dataframe_records, instances or "
            "inputs, or text/csv"
        ) from None
    if not isinstance(payload, dict) or len(payload.keys() & _FORMATS) != 1:
        raise InvalidArgument(
            f"the JSON body must hold exactly one of {', '.join(sorted(_FORMATS))} "
            "(MLflow's scoring formats)"
        )
    key = next(iter(payload.keys() & _FORMATS))
    value = payload[key]
    if key == "dataframe_split":
        import pandas as pd

        if not isinstance(value, dict) or "data" not in value:
            raise InvalidArgument('dataframe_split needs "data" (and "columns")')
        columns, data = value.get("columns"), value["data"]
        try:
            return pd.DataFrame(
                _numbers(data),
                # plain strings: checking a few names of pandas' Arrow strings costs more
                # than predicting a row
                columns=None if columns is None else pd.Index(columns, dtype=object),
                index=value.get("index"),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"dataframe_split does not make a frame: {exc}") from None
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidArgument("dataframe_records must be a list of objects")
        return value
    if not isinstance(value, list | dict):
        raise InvalidArgument(f"{key} must be a list or an object")
    return value


_FORMATS = {"dataframe_split", "dataframe_records", "instances", "inputs"}


def _numbers(rows: Any) -> Any:
    """Rows that are all numbers as one array (a frame is made from it four times faster
    than from lists); anything else as it is, for pandas to read column by column. Rows of
    different lengths are refused."""
    import numpy as np

    try:
        array = np.asarray(rows)
    except ValueError:
        raise InvalidArgument("the rows of dataframe_split do not have one length each") from None
    return array if array.ndim == 2 and array.dtype.kind in "iuf" else rows


def render(predictions: Any) -> bytes:
    """The answer's body: `{"predictions": [...]}`, NaN as null."""
    import orjson

    if getattr(predictions, "dtype", None) is not None and predictions.dtype.kind in "biuf":
        try:
            return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:  # not contiguous, or a dtype orjson does not write
            pass
    return json.dumps({"predictions": jsonable(predictions)}).encode()


def jsonable(predictions: Any) -> Any:
    """Predictions as JSON values: arrays and frames as lists, NaN as null."""
    if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):
        return predictions.to_dict(orient="records")
    if hasattr(predictions, "tolist"):
        predictions = predictions.tolist()
    return _clean(predictions)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_clean(x) for x in value]
    if isinstance(value, dict):
        return {str(k): _clean(x) for k, x in value.items()}
    return value


def create_app(
    served: Served,
    *,
    token: str | None = None,
    max_body_bytes: int = 64 << 20,
    webhook_secret: str | None = None,
) -> Any:
    """The scoring app (Starlette) for `served`, started and stopped with the app. With
    `webhook_secret`, `POST /reload` (a Registrum webhook on `alias.moved`, signed with
    that secret) makes it look where the alias points at once, not at the next poll."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    async def invocations(request: Request) -> Response:
        began = time.perf_counter()
        failed = True
        try:
            if token is not None and request.headers.get("authorization") != f"Bearer {token}":
                return error(401, "unauthenticated", "send Authorization: Bearer <token>")
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
                return error(413, "too_large", f"the body is above {max_body_bytes} bytes")
            body = await request.body()
            if len(body) > max_body_bytes:
                return error(413, "too_large", f"the body is above {max_body_bytes} bytes")
            model = served.model  # this request's model, whatever a swap does meanwhile
            if model is None:
                return error(503, "not_ready", "no model is loaded yet")
            try:
                data = parse_request(body, request.headers.get("content-type", ""))
                predictions = await run_in_threadpool(model.predict, data)
            except InvalidArgument as exc:
                return error(400, "invalid_input", str(exc))
            except Exception as exc:
                log.exception("%s raised", model.ref)
                return error(
                    500, "prediction_failed", f"{model.ref} raised {type(exc).__name__}: {exc}"
                )
            failed = False
            return Response(render(predictions), media_type="application/json")
        finally:
            served.observe(time.perf_counter() - began, failed)

    async def reload(request: Request) -> Response:
        from registrum.server.webhooks import verify_signature

        if webhook_secret is None:
            return error(
                404, "not_found", "start registrum serve with --webhook-secret-file to reload"
            )
        body = await request.body()
        if not verify_signature(webhook_secret, body, request.headers.get("x-registrum-signature")):
            return error(401, "bad_signature", "the X-Registrum-Signature does not match")
        switched = await run_in_threadpool(served.check)
        model = served.model
        return JSONResponse({"switched": switched, "serving": None if model is None else model.ref})

    async def ping(request: Request) -> Response:
        ok = served.model is not None
        return PlainTextResponse("ok\n" if ok else "no model\n", status_code=200 if ok else 503)

    async def health(request: Request) -> Response:
        model = served.model
        body = {
            "status": "ok" if model is not None else "no model",
            "serving": None if model is None else model.ref,
            "problem": served.problem,
        }
        return JSONResponse(body, status_code=200 if model is not None else 503)

    async def version(request: Request) -> Response:
        model = served.model
        if model is None:
            return error(503, "not_ready", "no model is loaded yet")
        return JSONResponse(
            {
                "reference": served.ref,
                "name": model.name,
                "version": model.version,
                "aliases": model.record.aliases,
                "flavor": model.flavor,
                "signature": model.signature,
                "switched_at": served.switched_at,
            }
        )

    async def metrics(request: Request) -> Response:
        model = served.model
        lines = [
            "# HELP registrum_serve_requests_total Scoring requests answered.",
            "# TYPE registrum_serve_requests_total counter",
            f"registrum_serve_requests_total {served.counts['requests']}",
            "# HELP registrum_serve_errors_total Scoring requests that failed.",
            "# TYPE registrum_serve_errors_total counter",
            f"registrum_serve_errors_total {served.counts['errors']}",
            "# HELP registrum_serve_latency_seconds Time to answer a scoring request.",
            "# TYPE registrum_serve_latency_seconds histogram",
        ]
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), served.latency, strict=True):
            total += count
            le = "+Inf" if math.isinf(bound) else f"{bound:g}"
            lines.append(f'registrum_serve_latency_seconds_bucket{{le="{le}"}} {total}')
        lines += [
            f"registrum_serve_latency_seconds_sum {served.latency_sum:.6f}",
            f"registrum_serve_latency_seconds_count {total}",
            "# HELP registrum_serve_model_version The version served.",
            "# TYPE registrum_serve_model_version gauge",
            f'registrum_serve_model_version{{model="{served.ref}"}} '
            f"{model.version if model else 0}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if served.model is None:
            await run_in_threadpool(served.start)
        yield
        served.stop()

    return Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/reload", reload, methods=["POST"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


CONFIG = "REGISTRUM_SERVE_CONFIG"  # what each worker process builds its app from


def app_from_env() -> Any:
    """The app a `registrum serve --workers N` worker runs (uvicorn calls this factory)."""
    import os

    config = json.loads(os.environ[CONFIG])
    served = Served(config["ref"], config["store"], config["poll_interval"])
    return create_app(
        served,
        token=config["token"],
        max_body_bytes=config["max_body_bytes"],
        webhook_secret=config["webhook_secret"],
    )
