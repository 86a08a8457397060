"""A run's files: the file tree MLflow's artifact proxy writes (store/tracking/files.py),
listed and downloaded through /api/v1 like the rest of the run, under the same roles.

Downloads are streamed from the blob store with `Range` support (`ranges.py`), always as
`application/octet-stream` attachments: the files are whatever a training script wrote, and
an HTML or script file served inline from the UI's origin could run there.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from registrum.entities import ArtifactFile
from registrum.errors import RangeNotSatisfiable
from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.ranges import parse_range
from registrum.server.responses import JSON
from registrum.store import Store

router = APIRouter(tags=["runs"])

Prefix = Annotated[
    str | None,
    Query(description="a folder of the run's files (e.g. `model`); none: all of them"),
]


def _headers(found: ArtifactFile) -> dict[str, str]:
    """What every answer about one file says: its size, its digest, that ranges work."""
    name = found.path.rsplit("/", 1)[-1]
    return {
        "accept-ranges": "bytes",
        "etag": f'"{found.sha256}"',
        "content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
    }


@router.get("/runs/{run_id}/files")
def list_run_files(
    run_id: str, store: StoreDep, prefix: Prefix = None, limit: Limit = 100, cursor: Cursor = None
) -> JSON:
    """The run's files by path (`{path, sha256, size}`), all of them or those under the
    folder `prefix`; what MLflow's `log_artifact` wrote lands here."""
    files = store.list_run_files(run_id, prefix)
    return page(lambda n, at: files[at : at + n], limit, cursor)


@router.head("/runs/{run_id}/files/{path:path}")
def run_file_info(run_id: str, path: str, store: StoreDep) -> Response:
    """The file's size (`Content-Length`) and sha256 (`ETag`), without its bytes."""
    found = store.get_run_file(run_id, path)
    return Response(status_code=200, headers={**_headers(found), "content-length": str(found.size)})


@router.get("/runs/{run_id}/files/{path:path}")
def download_run_file(run_id: str, path: str, request: Request, store: StoreDep) -> Response:
    """The file's bytes, streamed; a `Range: bytes=a-b` header asks for part of them."""
    found = store.get_run_file(run_id, path)
    return _stream(store, found, request.headers.get("range"))


def _stream(store: Store, found: ArtifactFile, header: str | None) -> Response:
    headers = _headers(found)
    span = None
    if header:
        try:
            span = parse_range(header, found.size)
        except RangeNotSatisfiable as exc:
            # Answered here, not raised: the error handler would drop Content-Range.
            headers["content-range"] = f"bytes */{found.size}"
            return JSON({"error": exc.to_dict()}, status_code=exc.status, headers=headers)
    if span is None:
        headers["content-length"] = str(found.size)
        return StreamingResponse(
            store.read_blob(found.sha256), media_type="application/octet-stream", headers=headers
        )
    start, end = span
    headers["content-range"] = f"bytes {start}-{end}/{found.size}"
    headers["content-length"] = str(end - start + 1)
    return StreamingResponse(
        store.read_blob(found.sha256, start, end),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )
