"""Maps every failure to `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

import functools
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from registrum.errors import RegistrumError
from registrum.server.responses import JSON, error

log = logging.getLogger("registrum.server")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts[:5]) or "invalid request"


def allowed_methods(request: Request) -> list[str]:
    """The methods of the routes for the request's path. Starlette's own `Allow` names only
    the first route whose path matches, and one path often has several (GET and PUT of a
    run's environment are two routes). Where templates overlap, the most specific wins, as
    the OpenAPI document reads: `/blobs/missing` is its own resource, not a `/blobs/{sha256}`."""
    path = request.url.path
    best, methods = -1, set[str]()
    for context in iter_route_contexts(request.app.routes):
        if context.path is None or not context.methods or not _pattern(context.path).match(path):
            continue
        fixed = sum(1 for part in context.path.split("/") if part and "{" not in part)
        if fixed > best:
            best, methods = fixed, set()
        if fixed == best:
            methods.update(context.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


@functools.cache
def _pattern(path: str) -> re.Pattern[str]:
    regex, _, _ = compile_path(path)
    return regex


def install(app: FastAPI) -> None:
    @app.exception_handler(RegistrumError)
    async def _registrum(_: Request, exc: RegistrumError) -> JSON:
        if exc.status >= 500:
            log.error("store error: %s", exc.message)
        # A 401 names the scheme the server wants (RFC 9110).
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSON({"error": exc.to_dict()}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSON:
        return error(400, "invalid_argument", _describe(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        message = str(exc.detail)
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["allow"] = ", ".join(allowed)
            message = (
                f"{request.method} is not allowed on {request.url.path}; "
                f"this resource answers {', '.join(allowed)}"
            )
        return JSON({"error": {"code": code, "message": message}}, exc.status_code, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSON:
        log.exception("unexpected error")
        return error(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
