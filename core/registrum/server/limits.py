"""Request-body limit (413) for everything but streamed blob uploads."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registrum.errors import PayloadTooLarge
from registrum.server.responses import error

BLOB_PREFIX = "/api/v1/blobs/"
BLOB_UPLOAD = "/api/v1/blobs"  # POST: content hashed by the server on arrival
MLFLOW_ARTIFACT = "/api/2.0/mlflow-artifacts/artifacts/"  # PUT: MLflow's file upload


def _blob_upload(method: str, path: str) -> bool:
    """Uploads stream into the blob store, never held in memory: no limit applies."""
    if method == "PUT":
        return path.startswith(BLOB_PREFIX) or path.startswith(MLFLOW_ARTIFACT)
    return method == "POST" and path.rstrip("/") == BLOB_UPLOAD


class BodyLimit:
    """Rejects bodies over `limit` bytes: at once when Content-Length says so,
    else as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _blob_upload(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._reject(scope, receive, send)
                    return
        seen = 0
        over = False
        answered = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                over = True
                raise PayloadTooLarge(self._message())
            return message

        async def guarded(message: Message) -> None:
            # A body without Content-Length (chunked) passes the limit while the app reads
            # it, and the app's body parser turns any error into its own 400: the answer is
            # the 413 that says why, instead of whatever the app made of the failed read.
            nonlocal answered
            if not over:
                await send(message)
            elif not answered and message["type"] == "http.response.start":
                answered = True
                await self._reject(scope, receive, send)

        await self.app(scope, counted, guarded)

    def _message(self) -> str:
        return (
            f"request body is larger than the server's limit of {self.limit} bytes; "
            "send smaller batches"
        )

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error(413, "payload_too_large", self._message())
        await response(scope, receive, send)
