"""Direct blob uploads: presigned URLs to an S3 bucket, so that bytes never pass the server.

The client starts an upload (`POST /blobs/uploads`) and sends its bytes to the URLs it gets:
one PUT, or parts in parallel, each part's URL asked for with the part's CRC32 (`.../parts`).
It completes the upload and polls its state until the server has checked the content
(`store/tracking/blob_direct.py` says how). Without a bucket, or under `--proxy-blobs`, the
start answers `mode: proxy` and the client uploads through `PUT /blobs/{sha256}` as always.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks
from starlette.concurrency import run_in_threadpool

from registrum.server.deps import StoreDep
from registrum.server.responses import JSON
from registrum.server.routes._schemas import Body

router = APIRouter(tags=["blobs"])
log = logging.getLogger("registrum.server")

_STATE: dict[str, Any] = {
    "type": "object",
    "required": ["upload", "state"],
    "properties": {
        "upload": {"type": "string", "description": "the upload's token"},
        "state": {"enum": ["uploading", "verifying", "done", "rejected"]},
        "sha256": {
            "type": ["string", "null"],
            "description": "null while a multipart upload completed without one is checked",
        },
        "size": {"type": "integer"},
        "reason": {"type": "string", "description": "why the content was rejected"},
        "part_size": {"type": "integer"},
        "part_count": {"type": "integer"},
        "parts": {"type": "array", "items": {"type": "object"}},
        "missing": {"type": "array", "items": {"type": "integer"}},
        "url": {"type": "string", "description": "the presigned PUT of a single-part upload"},
        "headers": {"type": "object", "description": "headers the PUT must carry"},
    },
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class BeginUpload(Body):
    sha256: Any = None
    size: Any


class PartChecksums(Body):
    crc32: Any


class CompleteUpload(Body):
    sha256: Any = None
    size: Any


@router.post(
    "/blobs/uploads",
    responses={
        200: _json(
            "How to send the blob: `mode` proxy (through `PUT /blobs/{sha256}`), "
            "`present` (nothing to send), or a direct upload's state with its URLs.",
            {
                "type": "object",
                "required": ["mode"],
                "properties": {"mode": {"enum": ["direct", "proxy"]}, "present": {}},
                "additionalProperties": True,
            },
        )
    },
)
def begin_upload(body: BeginUpload, store: StoreDep) -> JSON:
    """Starts sending a blob of `size` bytes (with its `sha256` when known: content the
    caller may use already is not sent again)."""
    return JSON(store.begin_direct_upload(sha256=body.sha256, size=body.size))


@router.get(
    "/blobs/uploads/{upload}",
    responses={200: _json("Where the upload stands, with URLs for the parts to send.", _STATE)},
)
def upload_state(upload: str, store: StoreDep) -> JSON:
    """An upload's state: the parts that arrived (a killed client resumes from them) and
    fresh URLs for the rest, or whether its content is being checked, done, or rejected."""
    return JSON(store.direct_upload_state(upload))


@router.post(
    "/blobs/uploads/{upload}/parts",
    responses={
        200: _json(
            "A presigned PUT per part, each with its CRC32 signed in (send it as "
            "`x-amz-checksum-crc32`).",
            {
                "type": "object",
                "required": ["upload", "urls"],
                "properties": {"upload": {"type": "string"}, "urls": {"type": "object"}},
            },
        )
    },
)
def part_urls(upload: str, body: PartChecksums, store: StoreDep) -> JSON:
    """URLs to send parts of a multipart upload to, given each part's CRC32 (base64 of its
    4 big-endian bytes, by part number): the bucket refuses a part that does not match."""
    return JSON(store.direct_part_urls(upload, body.crc32))


@router.post(
    "/blobs/uploads/{upload}/complete",
    responses={
        200: _json("The blob is stored (the object store vouched for its checksum).", _STATE),
        202: _json("The content is being checked; poll the upload's state.", _STATE),
    },
)
async def complete_upload(
    upload: str, body: CompleteUpload, store: StoreDep, tasks: BackgroundTasks
) -> JSON:
    """Closes the upload of a blob declared to hash to `sha256`. It counts as present once
    the server has read it back and the hash matched (202 until then). A multipart upload
    may leave `sha256` out: the blob is stored under what the server's read-back finds,
    which the upload's state gives once it is `done`."""
    state: dict[str, Any] = await run_in_threadpool(
        store.complete_direct_upload, upload, sha256=body.sha256, size=body.size
    )
    if state["state"] == "verifying":
        tasks.add_task(_verify, store, upload)
        return JSON(state, status_code=202)
    return JSON(state)


def _verify(store: Any, upload: str) -> None:
    """Checks a completed upload after the answer went out. A failure is logged: the
    periodic sweep (`verify_pending_uploads`) tries again later."""
    try:
        store.verify_direct_upload(upload)
    except Exception:
        log.exception("checking a direct upload failed; the sweep retries it")
