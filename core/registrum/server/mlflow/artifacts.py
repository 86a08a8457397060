"""MLflow's artifact proxy: `/api/2.0/mlflow-artifacts/artifacts/...` (streamed bytes).

Paths are those MLflow's client builds from an `artifact_uri`:

* `<experiment_id>/<run_id>/artifacts/<path>`: the run's file tree (read and write), where
  the run's Registrum artifacts also appear, read-only, as folders `<artifact name>/...`;
* `<experiment_id>/models/<model_id>/artifacts/<path>`: a logged model's files;
* `registrum/artifacts/<artifact_id>/<path>`: any Registrum artifact, read-only (the
  download URI of a model version whose files are not a logged model's).

The work is in plain functions (`put_artifact`, `list_artifacts`, `open_artifact`,
`delete_artifacts`) that the routes call, and `registrum import mlflow` calls in-process.
An upload streams to the blob store first (equal bytes are kept once; memory stays flat
whatever the size) and is then recorded at its path.
"""

from __future__ import annotations

import dataclasses
import mimetypes
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from registrum.entities import Artifact, ArtifactFile, BlobInfo
from registrum.errors import NotFound, RegistrumError
from registrum.server.mlflow import _wire, acting_store, error_response
from registrum.server.mlflow._experiments import experiment_id_of
from registrum.server.mlflow._wire import ARTIFACTS_API, MlflowError
from registrum.server.responses import JSON
from registrum.server.routes.blobs import receive_blob
from registrum.store import Store

router = APIRouter(include_in_schema=False)

REGISTRUM = "registrum/artifacts"  # the read-only namespace of Registrum artifacts
_MLFLOW_MADE = ("mlflow_model_id", "mlflow_run_path")  # artifacts made from MLflow's files


@dataclass(frozen=True)
class Target:
    """What an artifact path names: `kind` run, model or artifact; `owner` the run id,
    logged model id or artifact id; `path` inside it (None: its root); `project` the
    run's or logged model's, once `resolve` has checked it."""

    kind: str
    owner: str
    path: str | None
    project: str | None = None


def _inner(parts: list[str], raw: str) -> str | None:
    inner = "/".join(parts)
    if not inner:
        return None
    if any(p in (".", "..") for p in parts) or "\\" in inner:
        raise _wire.invalid(
            f"Invalid artifact path {raw!r}: it must be relative, without '.' or '..' segments."
        )
    return inner


def parse(path: str) -> Target:
    """The target of an artifact path, checked for form only."""
    raw = path
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[:2] == REGISTRUM.split("/") and len(parts) >= 3 and parts[2].isdigit():
        return Target("artifact", parts[2], _inner(parts[3:], raw))
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        _experiment(parts[0], raw)
        return Target("model", parts[2], _inner(parts[4:], raw))
    if len(parts) >= 3 and parts[2] == "artifacts":
        _experiment(parts[0], raw)
        return Target("run", parts[1], _inner(parts[3:], raw))
    raise _wire.not_found(
        f"No artifact location {raw!r}: artifact paths are <experiment_id>/<run_id>/artifacts/"
        "<path> or <experiment_id>/models/<model_id>/artifacts/<path>."
    )


def _experiment(value: str, raw: str) -> None:
    if not value.isdigit():
        raise _wire.invalid(f"Invalid artifact path {raw!r}: {value!r} is not an experiment id.")


def resolve(store: Store, path: str) -> Target:
    """`parse`, then the run or logged model must exist (the caller may read it) and belong
    to the experiment the path names."""
    target = parse(path)
    if target.kind == "artifact":
        return target
    experiment_id = path.strip("/").split("/", 1)[0]
    if target.kind == "run":
        project = store.project_of_run(target.owner)
    else:
        project = store.get_project(store.get_logged_model(target.owner).project)
    if experiment_id_of(project) != experiment_id:
        what = "run" if target.kind == "run" else "logged model"
        raise _wire.invalid(
            f"The {what} {target.owner} is not in experiment {experiment_id}; use the "
            f"artifact_uri the {what} answers."
        )
    return dataclasses.replace(target, project=project.name)


# -- writing ---------------------------------------------------------------------------


def writable(target: Target) -> Target:
    """The target, if an upload may go there (checked before any byte is read)."""
    if target.kind == "artifact":
        raise _wire.invalid(
            f"Registrum artifacts are read-only through MLflow ({REGISTRUM}/...); "
            "upload to a run's or a logged model's artifact_uri."
        )
    if target.path is None:
        raise _wire.invalid("An artifact upload needs a file path after 'artifacts/'.")
    return target


def record(store: Store, target: Target, blob: BlobInfo) -> ArtifactFile:
    """Puts an uploaded blob at the (writable) target's path."""
    path = writable(target).path or ""
    if target.kind == "run":
        return store.put_run_file(target.owner, path, sha256=blob.sha256, size=blob.size)
    return store.put_logged_model_file(target.owner, path, sha256=blob.sha256, size=blob.size)


def put_artifact(store: Store, path: str, chunks: Iterable[bytes]) -> ArtifactFile:
    """Stores the streamed bytes at an artifact path (what the PUT route does)."""
    target = writable(resolve(store, path))
    return record(store, target, store.put_blob(chunks))


def delete_artifacts(store: Store, path: str) -> None:
    """Removes a run's file or folder (MLflow's `delete_artifacts`)."""
    target = resolve(store, path)
    if target.kind != "run":
        raise _wire.invalid("Only a run's files can be deleted through MLflow.")
    store.delete_run_files(target.owner, target.path)


# -- reading ---------------------------------------------------------------------------


def _run_artifacts(store: Store, target: Target) -> dict[str, Artifact]:
    """The run's own Registrum artifacts (latest version of each name, without their
    files), by name."""
    project = target.project or store.get_run(target.owner).project
    found: dict[str, Artifact] = {}
    for a in store.list_artifacts(project, run_id=target.owner):  # newest first
        if a.name not in found and not any(k in a.metadata for k in _MLFLOW_MADE):
            found[a.name] = a
    return found


def _files(store: Store, target: Target) -> list[ArtifactFile]:
    """The files under the target's path, with paths relative to the target's root."""
    if target.kind == "model":
        return store.list_logged_model_files(target.owner, target.path)
    if target.kind == "artifact":
        files = store.get_artifact_by_id(int(target.owner)).files
        return _under(files, target.path)
    files = store.list_run_files(target.owner, target.path)
    if files:
        return files
    # Nothing of the run's own: a Registrum artifact of the run, under its name.
    return _under(_artifact_files(store, target), target.path)


def _artifact_files(store: Store, target: Target) -> list[ArtifactFile]:
    """The files of the run's Registrum artifact named by the first segment of the target's
    path, as paths under that name."""
    name = (target.path or "").partition("/")[0]
    artifact = _run_artifacts(store, target).get(name) if name else None
    if artifact is None:
        return []
    files = store.get_artifact_by_id(artifact.id).files
    return [ArtifactFile(f"{name}/{f.path}", f.sha256, f.size) for f in files]


def _under(files: list[ArtifactFile], prefix: str | None) -> list[ArtifactFile]:
    if prefix is None:
        return files
    return [f for f in files if f.path.startswith(prefix + "/")]


def _file(store: Store, target: Target) -> ArtifactFile | None:
    """The file at the target's path, if one is there."""
    if target.path is None:
        return None
    try:
        if target.kind == "run":
            return store.get_run_file(target.owner, target.path)
        if target.kind == "model":
            return store.get_logged_model_file(target.owner, target.path)
    except NotFound:
        pass
    if target.kind == "model":
        return None
    if target.kind == "artifact":
        files = store.get_artifact_by_id(int(target.owner)).files
    else:
        files = _artifact_files(store, target)
    return next((f for f in files if f.path == target.path), None)


def list_artifacts(store: Store, path: str) -> dict[str, Any]:
    """One level of the folder `path`: `{files: [{path (a basename), is_dir, file_size}]}`;
    `{}` for a file or a folder with nothing in it."""
    try:
        target = resolve(store, path)
    except MlflowError as exc:
        if exc.status == 404:
            return {}
        raise
    if _file(store, target) is not None:
        return {}
    files = _files(store, target)
    if target.kind == "run" and target.path is None:
        taken = {f.path.partition("/")[0] for f in files}
        for name, artifact in _run_artifacts(store, target).items():
            if name not in taken:
                files.append(ArtifactFile(f"{name}/", artifact.digest, artifact.size))
    cut = 0 if target.path is None else len(target.path) + 1
    entries: dict[str, dict[str, Any]] = {}
    for f in files:
        head, slash, _ = f.path[cut:].partition("/")
        if slash:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": f.size}
    if not entries:
        return {}
    return {"files": [entries[k] for k in sorted(entries)]}


def open_artifact(store: Store, path: str) -> tuple[ArtifactFile, Iterator[bytes]]:
    """The file at `path` and its bytes, streamed; 404 when no file is there."""
    target = resolve(store, path)
    found = _file(store, target)
    if found is None:
        raise _wire.not_found(f"No artifact at {path!r}: list its folder to see what is there.")
    return found, store.read_blob(found.sha256)


# -- routes ----------------------------------------------------------------------------


async def _answer(request: Request, work: Callable[[Store], Awaitable[Response]]) -> Response:
    """`work` for the caller's store; Registrum's errors answered as MLflow's."""
    try:
        return await work(await acting_store(request))
    except MlflowError as exc:
        return error_response(exc)
    except RegistrumError as exc:
        return error_response(_wire.translate(exc))


async def _thread(function: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(function, *args)


@router.put(ARTIFACTS_API + "/artifacts/{path:path}")
async def upload(path: str, request: Request) -> Response:
    """Checks the path, streams the body into a blob, then records it at the path."""

    async def work(store: Store) -> Response:
        target = writable(await _thread(resolve, store, path))
        blob = await receive_blob(request, store, None)
        await _thread(record, store, target, blob)
        return JSON({})

    return await _answer(request, work)


@router.get(ARTIFACTS_API + "/artifacts")
async def listing(request: Request) -> Response:
    path = request.query_params.get("path", "")

    async def work(store: Store) -> Response:
        return JSON(await _thread(list_artifacts, store, path))

    return await _answer(request, work)


@router.get(ARTIFACTS_API + "/artifacts/{path:path}")
async def download(path: str, request: Request) -> Response:
    async def work(store: Store) -> Response:
        found, chunks = await _thread(open_artifact, store, path)
        media = mimetypes.guess_type(found.path)[0] or "application/octet-stream"
        return StreamingResponse(
            chunks, media_type=media, headers={"content-length": str(found.size)}
        )

    return await _answer(request, work)


@router.delete(ARTIFACTS_API + "/artifacts/{path:path}")
async def remove(path: str, request: Request) -> Response:
    async def work(store: Store) -> Response:
        await _thread(delete_artifacts, store, path)
        return JSON({})

    return await _answer(request, work)
