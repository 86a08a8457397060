"""Maps every failure to `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

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
    async def _http(_: Request, exc: HTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSON:
        log.exception("unexpected error")
        return error(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
