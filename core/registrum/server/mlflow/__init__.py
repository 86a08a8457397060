"""MLflow's REST API on the same server: `/api/2.0/mlflow/...`, `/api/2.0/mlflow-artifacts/...`
and `/api/3.0/mlflow/server-info`, a thin adapter over the one service layer.

The route modules (`tracking`, `logged_models`, `registry`) register plain functions in
`_wire.ROUTES`; one catch-all route here parses the request, authenticates the caller
(Bearer token, or Basic with the token as password, as MLflow's client sends
`MLFLOW_TRACKING_TOKEN` or username/password), calls the function in a worker thread
and writes the answer, or MLflow's error body. The artifact routes stream bytes and have
routes of their own (`artifacts`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from registrum.errors import RegistrumError, Unauthorized
from registrum.server import deps
from registrum.server.mlflow import _wire
from registrum.server.mlflow._wire import API, MlflowError
from registrum.server.responses import JSON
from registrum.store import Store

# What MLflow offers that Registrum does not: a clear 501, never a crash or a bare 404.
UNSUPPORTED = {
    "traces": "traces",
    "prompts": "prompts",
    "gateway": "the AI gateway",
    "scorers": "scorers",
    "webhooks": "MLflow webhooks (Registrum's own are at /api/v1/webhooks)",
    "datasets": "evaluation datasets",
    "genai": "GenAI features",
}

router = APIRouter(include_in_schema=False)
API3 = "/api/3.0/mlflow"


def error_response(exc: MlflowError) -> JSON:
    headers = {"www-authenticate": 'Bearer, Basic realm="registrum"'} if exc.status == 401 else None
    return JSON(exc.body(), status_code=exc.status, headers=headers)


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if not header:
        raise Unauthorized(
            "this server needs an API token: set MLFLOW_TRACKING_TOKEN to a Registrum token"
        )
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("the Basic credentials are not valid base64") from None
        _, _, password = decoded.partition(":")
        if password:
            return password
    raise Unauthorized(
        "send a Registrum token as MLFLOW_TRACKING_TOKEN (Bearer), "
        "or as MLFLOW_TRACKING_PASSWORD (Basic)"
    )


async def acting_store(request: Request) -> Store:
    """The store, acting for the caller (server/deps.py's rules, with Basic auth too)."""
    return await deps.acting_store(request, _token)


async def _args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        args[key] = values[0] if len(values) == 1 else values
    raw = await request.body()
    if raw.strip():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _wire.invalid("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _wire.invalid("The request body must be a JSON object.")
        args.update(body)
    return args


def _unsupported(path: str) -> MlflowError | None:
    first = path.strip("/").split("/", 1)[0]
    what = UNSUPPORTED.get(first)
    if what is None and "prompt" in first:
        what = "prompts"
    if what is None:
        return None
    return MlflowError(
        "NOT_IMPLEMENTED",
        f"Registrum's MLflow API does not serve {what} ({path}); "
        "see docs/coming-from-mlflow.md for what it supports",
        501,
    )


async def dispatch(request: Request, path: str) -> JSON:
    path = "/" + path.strip("/")
    method = request.method.upper()
    found = _wire.resolve(method, path)
    try:
        if found is None:
            unsupported = _unsupported(path)
            if unsupported is not None:
                raise unsupported
            allowed = _wire.paths_matching(path)
            if allowed:
                raise MlflowError(
                    "BAD_REQUEST",
                    f"{method} is not allowed on {API}{path}; use {', '.join(allowed)}",
                    405,
                )
            raise MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow route {method} {API}{path}", 404)
        handler, params = found
        store = await acting_store(request)
        args = {**await _args(request), **params}
        answer = await run_in_threadpool(handler.handler, store, args)
    except MlflowError as exc:
        return error_response(exc)
    except RegistrumError as exc:
        return error_response(_wire.translate(exc))
    return JSON(answer)


@router.api_route(API + "/{path:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
async def mlflow_api(request: Request, path: str) -> JSON:
    return await dispatch(request, path)


@router.get(API3 + "/server-info")
async def server_info() -> JSON:
    """The capability probe: bytes go through the artifact proxy, in one request each."""
    return JSON(
        {
            "store_type": "registrum",
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "workspaces_enabled": False,
        }
    )


@router.api_route(API3 + "/{path:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
async def mlflow_api_v3(request: Request, path: str) -> JSON:
    """MLflow 3's own routes (traces, scorers, ...): none is served but `server-info`."""
    path = "/" + path.strip("/")
    unsupported = _unsupported(path)
    if unsupported is not None:
        return error_response(unsupported)
    where = f"{request.method.upper()} {API3}{path}"
    return error_response(MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow route {where}", 404))


def install(app: FastAPI) -> None:
    """Adds the MLflow API to `app` (importing the route modules registers their routes)."""
    from registrum.server.mlflow import artifacts, logged_models, registry, tracking

    del logged_models, registry, tracking  # registered in _wire.ROUTES on import
    app.include_router(artifacts.router)
    app.include_router(router)
