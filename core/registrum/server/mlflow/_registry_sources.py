"""Where a model version's files are: MLflow's `source`, as a Registrum artifact.

A source Registrum holds (`models:/m-<id>`, `runs:/<run>/<path>`, `mlflow-artifacts:/...`)
is the artifact of those files (`logged_models.source_artifact`); another version
(`models:/<name>/<version>` or `models:/<name>@<alias>`, what `copy_model_version` sends)
shares that version's artifact. MLflow's registry may also point at files it does not hold
(an S3 path, a run of another tracking server, as imported registries do): such a version's
artifact is one small file, `source.uri`, that says where the files are, and its download URI
is that location, as MLflow answers it. A local path is refused, as MLflow's server does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from registrum.entities import Artifact, ModelVersion
from registrum.errors import InvalidArgument, RunNotFound
from registrum.server.mlflow import logged_models
from registrum.server.mlflow._wire import invalid
from registrum.store import Store

POINTER = "source.uri"  # the one file of a version whose files are elsewhere
POINTER_MAX_BYTES = 64 * 1024
_HELD = ("models", "runs", "mlflow-artifacts")  # the schemes Registrum's own files answer
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<number>\d+)|@(?P<alias>[\w.-]+))/?$")
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
RUN_PATH = "mlflow_run_path"  # the metadata of an artifact frozen from a run's files


@dataclass(frozen=True)
class VersionFiles:
    """What `register_model_version` takes for a source: an artifact (loaded with its
    files, which the flavor is read from), or a pointer manifest. `of_run`: the artifact
    holds the files of a run the source names, frozen into that run's project."""

    artifact: Artifact | None
    files: list[dict[str, Any]] | None
    of_run: bool = False

    @property
    def artifact_id(self) -> int | None:
        return None if self.artifact is None else self.artifact.id


def files_for(store: Store, source: str, run_id: str | None) -> VersionFiles:
    """The artifact (or pointer) a version registered from `source` gets."""
    del run_id  # a source names its own files; MLflow sends the run beside it for lineage
    scheme = urlparse(source).scheme
    if scheme in ("", "file"):
        raise invalid(
            f"Invalid model version source {source!r}: a local path is not a source the "
            "server can read; log the model to a run (mlflow.<flavor>.log_model), then "
            "register runs:/<run_id>/<path> or models:/<model_id>."
        )
    registered = _REGISTERED.match(source)
    if registered is not None and not _LOGGED_MODEL_ID.match(registered["name"]):
        wanted = registered["number"] or registered["alias"]
        origin = store.get_model_version(f"{registered['name']}@{wanted}")
        return VersionFiles(origin.artifact, None)
    if scheme in _HELD:
        try:
            artifact = logged_models.source_artifact(store, source)
            of_run = scheme != "models" and RUN_PATH in artifact.metadata
            return VersionFiles(artifact, None, of_run)
        except RunNotFound:
            if scheme == "models":
                raise
    blob = store.put_blob([source.encode()])
    return VersionFiles(None, [{"path": POINTER, "sha256": blob.sha256, "size": blob.size}])


def known_run(store: Store, run_id: str | None, found: VersionFiles) -> tuple[str, str] | None:
    """`run_id` and its project when this store holds that run (a version links it for
    lineage); an artifact just made of that run's files (read with the caller's role on
    the run) already says both."""
    if run_id is None:
        return None
    artifact = found.artifact
    if found.of_run and artifact is not None and artifact.run_id == run_id:
        return run_id, artifact.project
    try:
        return run_id, store.project_of_run(run_id).name
    except (RunNotFound, InvalidArgument):
        return None


def download_uri(store: Store, mv: ModelVersion) -> str:
    """Where the client downloads a version's files: Registrum's own, or the location a
    pointer version names."""
    files = mv.artifact.files
    if len(files) == 1 and files[0].path == POINTER and files[0].size <= POINTER_MAX_BYTES:
        return b"".join(store.read_blob(files[0].sha256)).decode()
    return logged_models.download_uri(store, mv.artifact.id)
