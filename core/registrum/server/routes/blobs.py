"""Blobs: streamed upload with hash check, streamed download with Range support.

Who may read a blob is the service layer's rule (store/tracking/blob_access.py): a blob
the caller may not use answers exactly as one never stored (404, or "missing").
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from registrum import validation as v
from registrum.entities import BlobInfo
from registrum.errors import RangeNotSatisfiable
from registrum.server.deps import StoreDep
from registrum.server.ranges import parse_range
from registrum.server.responses import JSON
from registrum.server.routes._schemas import MissingBlobs

router = APIRouter(tags=["blobs"])

_FLUSH = 4 * 1024 * 1024  # bytes gathered before they go to a worker thread
_FULL: dict[int | str, dict[str, Any]] = {
    507: {
        "description": "The blob store has no space left (a full disk or quota); nothing was "
        "kept. Upload again once space is freed."
    }
}


async def receive_blob(request: Request, store: Any, sha256: str | None) -> BlobInfo:
    """Streams the request body into a new blob and publishes it. The chunks of one 4 MiB
    stretch are hashed and written in a worker thread while the next stretch arrives, in
    order, and never joined: no memory is allocated per stretch."""
    writer = await run_in_threadpool(store.open_blob_writer)

    def write(chunks: list[bytes]) -> None:
        for chunk in chunks:
            writer.write(chunk)

    writing: asyncio.Future[None] | None = None
    try:
        pending: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= _FLUSH:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(run_in_threadpool(write, pending))
                pending, size = [], 0
        if writing is not None:
            await writing
        await run_in_threadpool(write, pending)
        info: BlobInfo = await run_in_threadpool(store.commit_blob, writer, sha256=sha256)
        return info
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
        writer.abort()


@router.put("/blobs/{sha256:blob}", responses=_FULL)
async def upload(sha256: str, request: Request, store: StoreDep) -> JSON:
    """Streams the body into the blob store; the body must hash to `sha256`. A blob the
    caller may use already is not read again; one stored but not the caller's is received
    in full (the upload proves the caller holds the bytes) and answered as created."""
    v.sha256(sha256)
    if await run_in_threadpool(store.blob_exists, sha256):
        size = await run_in_threadpool(store.blob_size, sha256)
        return JSON({"sha256": sha256, "size": size, "created": False})
    info = await receive_blob(request, store, sha256)
    return JSON({"sha256": info.sha256, "size": info.size, "created": True}, status_code=201)


@router.post("/blobs", status_code=201, responses=_FULL)
async def upload_unhashed(request: Request, store: StoreDep) -> JSON:
    """Streams the body into the blob store and answers with its sha256, hashed on arrival
    (for a client that sends a large file without reading it twice). Content the store
    has already is kept once."""
    info = await receive_blob(request, store, None)
    return JSON({"sha256": info.sha256, "size": info.size}, status_code=201)


@router.head("/blobs/{sha256:blob}")
def exists(sha256: str, store: StoreDep) -> Response:
    """The blob's size, when it is stored and the caller may read it; else 404."""
    size = store.blob_size(sha256)
    return Response(
        status_code=200,
        headers={"content-length": str(size), "accept-ranges": "bytes", "etag": f'"{sha256}"'},
    )


@router.get(
    "/blobs/{sha256:blob}",
    responses={
        307: {
            "description": "The blob's bytes are in the object store: a presigned GET "
            "(valid for an hour; send it without the Authorization header, with any Range).",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    },
)
def download(
    sha256: str,
    request: Request,
    store: StoreDep,
    redirect: Annotated[
        bool,
        Query(
            description="Answer 307 with a presigned GET where the bytes live in an S3 bucket "
            "(and the server does not proxy them); false or absent, the server sends the "
            "bytes itself (the web UI, whose pages fetch only from their own origin)."
        ),
    ] = False,
) -> Response:
    """The blob's bytes (a Range gets 206), or, with `redirect`, where the bytes live in an S3
    bucket, a redirect to a presigned GET."""
    url = store.blob_download_url(sha256) if redirect else None
    header = request.headers.get("range")
    headers = {"accept-ranges": "bytes", "etag": f'"{sha256}"'}
    span = None
    if url is None or header:
        size = store.blob_size(sha256)
    if header:
        try:
            span = parse_range(header, size)
        except RangeNotSatisfiable as exc:
            # Answered here, not raised: the error handler would drop Content-Range.
            headers["content-range"] = f"bytes */{size}"
            return JSON({"error": exc.to_dict()}, status_code=exc.status, headers=headers)
    if url is not None:  # a satisfiable range (or none) is the bucket's to serve
        return Response(status_code=307, headers={"location": url, "cache-control": "no-store"})
    if span is None:
        headers["content-length"] = str(size)
        return StreamingResponse(
            store.read_blob(sha256), media_type="application/octet-stream", headers=headers
        )
    start, end = span
    headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1)
    return StreamingResponse(
        store.read_blob(sha256, start, end),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.post("/blobs/missing")
def missing(body: MissingBlobs, store: StoreDep) -> JSON:
    """Which of these digests the caller must upload: those not stored, and those it may
    not use yet."""
    return JSON({"missing": store.missing_blobs(body.sha256s)})
