"""`HttpStore`: the service layer's API, spoken over HTTP to a `registrum server`.

Same method names, arguments, records and errors as `registrum.store.Store`,
so code (and the contract tests) run unchanged against either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from registrum import validation as v
from registrum.client import _wire as w
from registrum.client.direct import DirectTransfers
from registrum.entities import (
    UNSET,
    AliasMove,
    ApiToken,
    Artifact,
    ArtifactFile,
    AuditEvent,
    BlobInfo,
    DatasetVersion,
    Delivery,
    EvaluationHistory,
    GcReport,
    IngestResult,
    LineageGraph,
    Media,
    Membership,
    MetricHistory,
    MetricSummary,
    ModelVersion,
    Page,
    Policy,
    Project,
    PromotionRequest,
    RegisteredModel,
    Run,
    User,
    Webhook,
    _Unset,
    decode_floats,
    decode_nonfinite,
    encode_floats,
    encode_nonfinite,
)
from registrum.errors import (
    ArtifactNotFound,
    BlobNotFound,
    NotFound,
)

if TYPE_CHECKING:
    import numpy as np


class HttpStore(w.Connection):
    """A `Store` behind `registrum server`.

    Args:
        url: the server, e.g. `http://127.0.0.1:8765`.
        token: bearer token sent with every request (`REGISTRUM_TOKEN`).
        timeout: seconds to wait for a connection and for each read.
    """

    def health(self) -> dict[str, Any]:
        """The server's `/health` answer (HTTP only: an embedded store has no server)."""
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    # -- projects -------------------------------------------------------------

    def create_project(self, name: str, *, description: str | None = None) -> Project:
        return Project.from_dict(
            self._json("POST", "/projects", body={"name": name, "description": description})
        )

    def get_project(self, name: str, *, include_deleted: bool = False) -> Project:
        query = {"deleted": "true"} if include_deleted else None
        return Project.from_dict(self._json("GET", f"/projects/{w.project(name)}", params=query))

    def list_projects(
        self, *, limit: int | None = None, offset: int = 0, include_deleted: bool = False
    ) -> list[Project]:
        query = {"deleted": "true" if include_deleted else None}
        return [Project.from_dict(p) for p in self._pages("/projects", query, limit, offset)]

    def collect_garbage(
        self, older_than: float | str = 7 * 86400.0, *, dry_run: bool = False
    ) -> GcReport:
        body = {"older_than": older_than, "dry_run": dry_run}
        return GcReport.from_dict(self._json("POST", "/gc", body=body))

    def set_retention(
        self,
        project: str,
        *,
        keep_checkpoints: int | None = None,
        artifact_ttl: float | str | None = None,
    ) -> Project:
        body = {"keep_checkpoints": keep_checkpoints, "artifact_ttl": artifact_ttl}
        path = f"/projects/{w.project(project)}/retention"
        return Project.from_dict(self._json("PUT", path, body=body))

    def apply_retention(self, project: str) -> dict[str, dict[str, int]]:
        path = f"/projects/{w.project(project)}/retention/apply"
        return {project: self._json("POST", path)}

    def delete_project(self, name: str) -> None:
        self._call("DELETE", f"/projects/{w.project(name)}")

    def restore_project(self, name: str) -> Project:
        return Project.from_dict(self._json("POST", f"/projects/{w.project(name)}/restore"))

    # -- runs -----------------------------------------------------------------

    def create_run(
        self,
        project: str,
        *,
        run_id: str | None = None,
        name: str | None = None,
        job_type: str | None = None,
        parent_id: str | None = None,
        user: str | None = None,
        host: str | None = None,
        description: str | None = None,
        start_time: float | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        fields: dict[str, Any] = {
            "name": name,
            "job_type": job_type,
            "parent_id": parent_id,
            "user": user,
            "host": host,
            "description": description,
            "start_time": start_time,
            "config": config,
            "tags": tags,
        }
        body: dict[str, Any] = {
            "project": project,
            "id": run_id,
            **{k: val for k, val in fields.items() if val is not None},
        }
        if isinstance(body.get("config"), Mapping):
            body["config"] = encode_nonfinite(dict(body["config"]))
        return Run.from_dict(self._json("POST", "/runs", body=body))

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._json("GET", f"/runs/{w.run(run_id)}"))

    def update_run(
        self, run_id: str, *, name: str | None = None, description: str | None = None
    ) -> Run:
        body = {"name": name, "description": description}
        return Run.from_dict(self._json("PATCH", f"/runs/{w.run(run_id)}", body=body))

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{w.run(run_id)}")

    def restore_run(self, run_id: str) -> Run:
        return Run.from_dict(self._json("POST", f"/runs/{w.run(run_id)}/restore"))

    def move_run(self, run_id: str, project: str) -> Run:
        body = {"project": project}
        return Run.from_dict(self._json("POST", f"/runs/{w.run(run_id)}/move", body=body))

    def set_run_status(self, run_id: str, status: str, *, end_time: float | None = None) -> Run:
        body = {"status": status, "end_time": end_time}
        return Run.from_dict(self._json("POST", f"/runs/{w.run(run_id)}/status", body=body))

    def finish_run(
        self, run_id: str, status: str = "finished", *, end_time: float | None = None
    ) -> Run:
        v.terminal_status(status)
        return self.set_run_status(run_id, status, end_time=end_time)

    def heartbeat(self, run_id: str) -> None:
        self._call("POST", f"/runs/{w.run(run_id)}/heartbeat")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST",
            f"/runs/{w.run(run_id)}/params",
            body={"params": encode_nonfinite(params) if isinstance(params, dict) else params},
        )["params"]
        result = {k: decode_nonfinite(x) for k, x in result.items()}
        return result

    def param_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json(
            "GET", f"/runs/{w.run(run_id)}/params/{w.key(key)}/history"
        )["items"]
        return items

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("PATCH", f"/runs/{w.run(run_id)}/tags", body={"tags": tags})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{w.run(run_id)}/tags/{w.key(key)}")

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        self._call("PUT", f"/runs/{w.run(run_id)}/environment", body=environment)

    def get_environment(self, run_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("GET", f"/runs/{w.run(run_id)}/environment")
        return result

    def set_code_version(
        self,
        run_id: str,
        *,
        commit: str | None = None,
        branch: str | None = None,
        remote: str | None = None,
        dirty: bool | None = None,
        diff_sha256: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        fields = {
            "commit": commit,
            "branch": branch,
            "remote": remote,
            "dirty": dirty,
            "diff_sha256": diff_sha256,
            "extra": extra,
        }
        body = {k: val for k, val in fields.items() if val is not None}
        self._call("PUT", f"/runs/{w.run(run_id)}/code", body=body)

    def get_code_version(self, run_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("GET", f"/runs/{w.run(run_id)}/code")
        return result

    def add_run_input(self, run_id: str, *, kind: str, target_id: int, role: str = "input") -> None:
        self._call(
            "POST",
            f"/runs/{w.run(run_id)}/inputs",
            body={"kind": kind, "target_id": target_id, "role": role},
        )

    def run_inputs(self, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{w.run(run_id)}/inputs")["items"]
        return items

    def search_runs(
        self,
        project: str,
        *,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        deleted: str = "exclude",
        top_level: bool = False,
    ) -> Page:
        body = {
            "filter": filter,
            "order_by": order_by,
            "limit": limit,
            "cursor": cursor,
            "deleted": deleted,
            "top_level": top_level,
        }
        data = self._json("POST", f"/projects/{w.project(project)}/runs/search", body=body)
        return Page(
            items=[Run.from_dict(r) for r in data["items"]], next_cursor=data["next_cursor"]
        )

    # -- metrics --------------------------------------------------------------

    def log_metrics(
        self,
        run_id: str,
        *,
        seq: int,
        keys: Sequence[str],
        steps: Sequence[int] | np.ndarray[Any, Any],
        values: Sequence[float] | np.ndarray[Any, Any],
        timestamps: Sequence[float] | np.ndarray[Any, Any] | None = None,
    ) -> IngestResult:
        body: dict[str, Any] = {
            "seq": seq,
            "keys": list(keys) if isinstance(keys, tuple) else keys,
            "steps": steps.tolist() if hasattr(steps, "tolist") else steps,
            "values": encode_floats(values) if isinstance(values, Iterable) else values,
        }
        if timestamps is not None:
            body["timestamps"] = (
                encode_floats(timestamps) if isinstance(timestamps, Iterable) else timestamps
            )
        return IngestResult.from_dict(
            self._json("POST", f"/runs/{w.run(run_id)}/metrics", body=w.dumps_batch(body))
        )

    def metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        data = self._json("GET", f"/runs/{w.run(run_id)}/metrics")
        return {k: MetricSummary.from_dict(m) for k, m in data.items()}

    def metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricHistory:
        import numpy as np

        params = {} if max_points is None else {"max_points": v.integer(max_points, "max_points")}
        data = self._json("GET", f"/runs/{w.run(run_id)}/metrics/{w.key(key)}", params=params)
        values = decode_floats(data["values"])
        scale = int(data.get("step_scale", 0))
        return MetricHistory(
            run_id=data["run_id"],
            key=data["key"],
            steps=np.asarray(data["steps"], dtype=np.float64 if scale else np.int64),
            values=np.asarray(values, dtype=np.float64),
            timestamps=np.asarray(data["timestamps"], dtype=np.float64),
            total=data["total"],
            downsampled=data["downsampled"],
            step_scale=scale,
        )

    def set_metric_step_scale(self, run_id: str, key: str, scale: int) -> None:
        self._json(
            "PUT",
            f"/runs/{w.run(run_id)}/metric-step-scales",
            body={"key": key, "scale": scale},
        )

    # -- blobs ----------------------------------------------------------------

    def put_blob(
        self, stream: BinaryIO | Iterable[bytes], *, sha256: str | None = None
    ) -> BlobInfo:
        """Uploads content. With `sha256`, content the server has already is not sent again;
        without, the content is sent once and the server hashes it on arrival."""
        if sha256 is not None:
            try:
                return BlobInfo(sha256=sha256, size=self.blob_size(sha256))
            except BlobNotFound:
                pass
        # A file goes with its Content-Length, read in blocks by the HTTP client;
        # anything else goes chunked.
        body = stream if w.seekable(stream) else w.chunks(stream)
        if sha256 is None:
            data = self._json("POST", "/blobs", data=body)
        else:
            data = self._json("PUT", f"/blobs/{w.sha(sha256)}", data=body)
        return BlobInfo(sha256=data["sha256"], size=data["size"])

    def blob_exists(self, sha256: str) -> bool:
        try:
            self.blob_size(sha256)
        except BlobNotFound:
            return False
        return True

    def blob_size(self, sha256: str) -> int:
        try:
            response = self._call("HEAD", f"/blobs/{w.sha(sha256)}")
        except NotFound:  # a HEAD answer has no body to name the error
            raise BlobNotFound(f"blob {sha256} is not stored", sha256=sha256) from None
        return int(response.headers["content-length"])

    def missing_blobs(self, sha256s: Sequence[str]) -> list[str]:
        missing: list[str] = self._json("POST", "/blobs/missing", body={"sha256s": list(sha256s)})[
            "missing"
        ]
        return missing

    def read_blob(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        headers = {}
        if start or end is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        response = self._call(
            "GET",
            f"/blobs/{w.sha(sha256)}",
            headers=dict(headers),
            params={"redirect": "true"},
            stream=True,
            allow_redirects=False,
        )
        if response.status_code in (302, 303, 307, 308):
            # The bytes are in the server's bucket: fetched from there, without our token.
            location = response.headers["location"]
            response.close()
            response = self.direct.get(location, headers)
        return w.iter_body(response)

    @property
    def direct(self) -> DirectTransfers:
        """Transfers straight to and from the server's object store (made on first use)."""
        found: DirectTransfers | None = self.__dict__.get("_direct")
        if found is None:
            found = self.__dict__.setdefault("_direct", DirectTransfers(self))
        return found

    def upload_direct(
        self,
        source: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        progress: Callable[[int], None] = lambda _: None,
    ) -> BlobInfo | None:
        """Sends a file straight to the server's object store through presigned URLs (parts
        in parallel, resumable); None when the server takes the bytes itself (`put_blob`)."""
        if sha256 is not None:
            v.sha256(sha256)
        return self.direct.upload(Path(source), sha256=sha256, progress=progress)

    def close(self) -> None:
        direct: DirectTransfers | None = self.__dict__.get("_direct")
        if direct is not None:
            direct.close()
        super().close()

    # -- media --------------------------------------------------------------------

    def log_media(
        self,
        run_id: str,
        key: str,
        *,
        step: int,
        kind: str,
        format: str,
        sha256: str,
        size: int,
        meta: dict[str, Any] | None = None,
    ) -> Media:
        body = {
            "key": key,
            "step": step,
            "kind": kind,
            "format": format,
            "sha256": sha256,
            "size": size,
            "meta": meta,
        }
        return Media.from_dict(self._json("POST", f"/runs/{w.run(run_id)}/media", body=body))

    def list_media(self, run_id: str, key: str | None = None) -> list[Media]:
        items = self._pages(f"/runs/{w.run(run_id)}/media", {"key": key}, None, 0)
        return [Media.from_dict(m) for m in items]

    def get_media(self, run_id: str, key: str, step: int) -> Media:
        step = v.integer(step, "step", minimum=0, bits=64)
        found = self._json("GET", f"/runs/{w.run(run_id)}/media/{step}", params={"key": key})
        return Media.from_dict(found)

    # -- run files ------------------------------------------------------------

    def list_run_files(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]:
        items = self._pages(f"/runs/{w.run(run_id)}/files", {"prefix": prefix}, None, 0)
        return [ArtifactFile.from_dict(f) for f in items]

    def get_run_file(self, run_id: str, path: str) -> ArtifactFile:
        """The file's record, from the headers of a HEAD request (no bytes are sent)."""
        checked = v.artifact_path(path)
        where = "/".join(w.q(part) for part in checked.split("/"))
        try:
            response = self._call("HEAD", f"/runs/{w.run(run_id)}/files/{where}")
        except NotFound:  # a HEAD answer has no body to name the error
            raise ArtifactNotFound(
                f"run {run_id} has no file {checked!r}; list its files with run_files",
                path=checked,
            ) from None
        sha256 = response.headers["etag"].strip('"')
        return ArtifactFile(checked, sha256, int(response.headers["content-length"]))

    # -- artifacts and datasets ------------------------------------------------

    def create_artifact(
        self,
        project: str,
        name: str,
        *,
        type: str,
        files: Sequence[Mapping[str, Any]],
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact:
        body = {
            "name": name,
            "type": type,
            "files": files,
            "run_id": run_id,
            "metadata": metadata,
        }
        return Artifact.from_dict(
            self._json("POST", f"/projects/{w.project(project)}/artifacts", body=body)
        )

    def get_artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact:
        return Artifact.from_dict(
            self._json(
                "GET",
                f"/projects/{w.project(project)}/artifacts/{w.name(name, 'artifact name')}"
                f"/versions/{w.version(version)}",
            )
        )

    def get_artifact_by_id(self, artifact_id: int) -> Artifact:
        return Artifact.from_dict(self._json("GET", f"/artifacts/{int(artifact_id)}"))

    def list_artifacts(
        self,
        project: str,
        *,
        name: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[Artifact]:
        path = f"/projects/{w.project(project)}/artifacts"
        query = {"name": name, "run_id": run_id, "deleted": "true" if include_deleted else None}
        items = self._pages(path, query, limit, offset)
        return [Artifact.from_dict(a) for a in items]

    def delete_artifact(self, project: str, name: str, version: int) -> None:
        self._call("DELETE", _artifact_path(project, name, version))

    def restore_artifact(self, project: str, name: str, version: int) -> Artifact:
        return Artifact.from_dict(
            self._json("POST", _artifact_path(project, name, version) + "/restore")
        )

    def log_dataset(
        self,
        project: str,
        name: str,
        *,
        fingerprint: str,
        schema: Mapping[str, Any] | None = None,
        rows: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        artifact_id: int | None = None,
        run_id: str | None = None,
        role: str = "input",
    ) -> DatasetVersion:
        fields = {
            "schema": schema,
            "rows": rows,
            "metadata": metadata,
            "artifact_id": artifact_id,
            "run_id": run_id,
            "role": role,
        }
        body = {
            "name": name,
            "fingerprint": fingerprint,
            **{k: val for k, val in fields.items() if val is not None},
        }
        return DatasetVersion.from_dict(
            self._json("POST", f"/projects/{w.project(project)}/datasets", body=body)
        )

    def get_dataset(self, project: str, name: str, version: int | str = "latest") -> DatasetVersion:
        return DatasetVersion.from_dict(
            self._json(
                "GET",
                f"/projects/{w.project(project)}/datasets/{w.name(name, 'dataset name')}"
                f"/versions/{w.version(version)}",
            )
        )

    def list_datasets(
        self, project: str, *, name: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetVersion]:
        path = f"/projects/{w.project(project)}/datasets"
        items = self._pages(path, {"name": name}, limit, offset)
        return [DatasetVersion.from_dict(d) for d in items]

    # -- questions across runs ------------------------------------------------

    def lineage(self, node: str, *, direction: str = "both", depth: int = 3) -> LineageGraph:
        params = {"node": node, "direction": direction, "depth": depth}
        return LineageGraph.from_dict(self._json("GET", "/lineage", params=params))

    def evaluations(self, name: str) -> EvaluationHistory:
        path = f"/models/{w.model(name)}/evaluations"
        return EvaluationHistory.from_dict(self._json("GET", path))

    def diff_datasets(self, project: str, name: str, a: int | str, b: int | str) -> dict[str, Any]:
        path = f"/projects/{w.project(project)}/datasets/{w.name(name, 'dataset name')}/diff"
        diff: dict[str, Any] = self._json("GET", path, params={"a": a, "b": b})
        return diff

    def dataset_models(
        self, project: str, name: str, *, version: int | str | None = None
    ) -> list[dict[str, Any]]:
        path = f"/projects/{w.project(project)}/datasets/{w.name(name, 'dataset name')}/models"
        params = {} if version is None else {"version": version}
        items: list[dict[str, Any]] = self._json("GET", path, params=params)["items"]
        return items

    def compare_code(self, run_a: str, run_b: str) -> dict[str, Any]:
        params = {"a": w.run(run_a), "b": w.run(run_b)}
        compared: dict[str, Any] = self._json("GET", "/code/compare", params=params)
        return compared

    def list_audit(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        offset: int = 0,
        exclude_actions: Sequence[str] = (),
    ) -> list[AuditEvent]:
        filters = {
            "project": project,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "actor": actor,
            "since": since,
            "until": until,
            "exclude_action": list(exclude_actions) or None,
        }
        params = {k: x for k, x in filters.items() if x is not None}
        return [AuditEvent.from_dict(e) for e in self._pages("/audit", params, limit, offset)]

    def verify_audit(self, anchors: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        if anchors is None:
            result: dict[str, Any] = self._json("GET", "/audit/verify")
        else:
            result = self._json("POST", "/audit/verify", body={"anchors": list(anchors)})
        return result

    def audit_anchor(self) -> dict[str, Any]:
        anchor: dict[str, Any] = self._json("GET", "/audit/anchor")
        return anchor

    # -- registry -------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        project: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        body = {"name": name, "project": project, "description": description, "tags": tags}
        return RegisteredModel.from_dict(self._json("POST", "/models", body=body))

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_dict(self._json("GET", f"/models/{w.model(name)}"))

    def list_models(
        self,
        *,
        project: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[RegisteredModel]:
        query = {"project": project, "deleted": "true" if include_deleted else None}
        items = self._pages("/models", query, limit, offset)
        return [RegisteredModel.from_dict(m) for m in items]

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        body = {"description": description, "tags": tags}
        return RegisteredModel.from_dict(self._json("PATCH", f"/models/{w.model(name)}", body=body))

    def register_model_version(
        self,
        name: str,
        *,
        project: str | None = None,
        run_id: str | None = None,
        artifact_id: int | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        flavor: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        fields: dict[str, Any] = {
            "project": project,
            "run_id": run_id,
            "artifact_id": artifact_id,
            "files": files,
            "flavor": flavor,
            "signature": signature,
            "metrics": metrics,
            "params": params,
            "description": description,
            "tags": tags,
            "aliases": aliases,
        }
        if isinstance(fields.get("metrics"), Mapping):
            fields["metrics"] = encode_nonfinite(dict(fields["metrics"]))
        if isinstance(fields.get("aliases"), tuple):
            fields["aliases"] = list(fields["aliases"])
        body = {k: val for k, val in fields.items() if val is not None}
        path = f"/models/{w.model(name)}/versions"
        return ModelVersion.from_dict(self._write("POST", path, key=idempotency_key, body=body))

    def get_model_version(self, ref: str, *, at: float | str | None = None) -> ModelVersion:
        params = {} if at is None else {"at": str(v.instant(at, "at"))}
        return ModelVersion.from_dict(self._json("GET", f"/models/{w.ref(ref)}", params=params))

    def list_model_versions(
        self,
        name: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[ModelVersion]:
        query = {"deleted": "true" if include_deleted else None}
        items = self._pages(f"/models/{w.model(name)}/versions", query, limit, offset)
        return [ModelVersion.from_dict(m) for m in items]

    def update_model_version(
        self, ref: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        body = {"description": description, "tags": tags}
        return ModelVersion.from_dict(self._json("PATCH", f"/models/{w.ref(ref)}", body=body))

    def delete_model(self, name: str) -> None:
        self._call("DELETE", f"/models/{w.model(name)}")

    def restore_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_dict(self._json("POST", f"/models/{w.model(name)}/restore"))

    def delete_model_version(self, ref: str, *, remove_aliases: bool = False) -> None:
        params = {"remove_aliases": "true"} if remove_aliases else {}
        self._call("DELETE", f"/models/{w.ref(ref)}", params=params)

    def restore_model_version(self, ref: str) -> ModelVersion:
        return ModelVersion.from_dict(self._json("POST", f"/models/{w.ref(ref)}/restore"))

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        path = f"/models/{w.model(name)}/tags/{w.q(v.key(key, 'tag key'))}"
        return RegisteredModel.from_dict(self._json("DELETE", path))

    def delete_model_version_tag(self, ref: str, key: str) -> ModelVersion:
        path = f"/models/{w.ref(ref)}/tags/{w.q(v.key(key, 'tag key'))}"
        return ModelVersion.from_dict(self._json("DELETE", path))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected_version: int | _Unset | None = UNSET,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        body: dict[str, Any] = {"version": version}
        if not isinstance(expected_version, _Unset):
            body["expected_version"] = expected_version
        path = f"/models/{w.model(name)}/aliases/{w.alias(alias)}"
        return ModelVersion.from_dict(self._write("PUT", path, key=idempotency_key, body=body))

    def delete_alias(
        self, name: str, alias: str, *, expected_version: int | _Unset = UNSET
    ) -> None:
        params = {}
        if isinstance(expected_version, int):
            params["expected_version"] = expected_version
        self._call("DELETE", f"/models/{w.model(name)}/aliases/{w.alias(alias)}", params=params)

    # -- webhooks -------------------------------------------------------------

    def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        project: str | None = None,
        model: str | None = None,
        secret: str | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        body = {
            "url": url,
            "events": list(events) if isinstance(events, tuple) else events,
            "project": project,
            "model": model,
            "secret": secret,
        }
        return Webhook.from_dict(self._write("POST", "/webhooks", key=idempotency_key, body=body))

    def get_webhook(self, webhook_id: str) -> Webhook:
        return Webhook.from_dict(self._json("GET", self._webhook_path(webhook_id)))

    def list_webhooks(
        self,
        *,
        project: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Webhook]:
        params = {"project": project, "model": model}
        return [Webhook.from_dict(h) for h in self._pages("/webhooks", params, limit, offset)]

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", self._webhook_path(webhook_id))

    def list_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Delivery]:
        path = f"{self._webhook_path(webhook_id)}/deliveries"
        return [Delivery.from_dict(d) for d in self._pages(path, {"status": status}, limit, offset)]

    def _webhook_path(self, webhook_id: str) -> str:
        """A webhook id as a path segment, checked by the store's own rule first: an empty
        or malformed one would reach another route, or none."""
        return f"/webhooks/{w.q(v.webhook_id(webhook_id))}"

    # -- promotion with approval ------------------------------------------------

    def set_policy(
        self,
        name: str,
        *,
        protected: Sequence[str] = (),
        approver_role: str = "reviewer",
        approvals_needed: int = 1,
        allow_self_approval: bool = False,
        gates: Sequence[Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
    ) -> Policy:
        policy: dict[str, Any] = {
            "protected": protected,
            "approver_role": approver_role,
            "approvals_needed": approvals_needed,
            "allow_self_approval": allow_self_approval,
            "gates": gates,
        }
        for key in ("protected", "gates"):
            if isinstance(policy.get(key), tuple):
                policy[key] = list(policy[key])
        path = f"/models/{w.model(name)}/policy"
        return Policy.from_dict(self._write("PUT", path, key=idempotency_key, body=policy))

    def get_policy(self, name: str) -> Policy:
        return Policy.from_dict(self._json("GET", f"/models/{w.model(name)}/policy"))

    def request_promotion(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> PromotionRequest:
        body = {"alias": alias, "version": version, "comment": comment}
        path = f"/models/{w.model(name)}/requests"
        return PromotionRequest.from_dict(self._write("POST", path, key=idempotency_key, body=body))

    def list_requests(
        self,
        name: str,
        *,
        state: str | None = None,
        alias: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PromotionRequest]:
        params = {"state": state, "alias": alias}
        items = self._pages(f"/models/{w.model(name)}/requests", params, limit, offset)
        return [PromotionRequest.from_dict(r) for r in items]

    def get_request(self, request_id: int) -> PromotionRequest:
        v.integer(request_id, "request id", minimum=1)
        return PromotionRequest.from_dict(self._json("GET", f"/requests/{request_id}"))

    def approve_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        return self._request_action(request_id, "approve", comment, idempotency_key)

    def reject_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        return self._request_action(request_id, "reject", comment, idempotency_key)

    def cancel_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        return self._request_action(request_id, "cancel", comment, idempotency_key)

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[AliasMove]:
        path = f"/models/{w.model(name)}/aliases/history"
        return [AliasMove.from_dict(m) for m in self._pages(path, {"alias": alias}, limit, offset)]

    def _request_action(
        self, request_id: int, action: str, comment: str | None, key: str | None
    ) -> PromotionRequest:
        v.integer(request_id, "request id", minimum=1)
        path = f"/requests/{request_id}/{action}"
        return PromotionRequest.from_dict(
            self._write("POST", path, key=key, body={"comment": comment})
        )

    # -- access control ---------------------------------------------------------

    def whoami(self) -> User:
        return User.from_dict(self._json("GET", "/me"))

    def create_user(
        self,
        name: str,
        *,
        server_admin: bool = False,
        service: bool = False,
        idempotency_key: str | None = None,
    ) -> User:
        body = {"name": name, "server_admin": server_admin, "service": service}
        return User.from_dict(self._write("POST", "/users", key=idempotency_key, body=body))

    def list_users(self) -> list[User]:
        return [User.from_dict(u) for u in self._json("GET", "/users")["items"]]

    def disable_user(self, name: str) -> User:
        return User.from_dict(self._json("POST", f"/users/{w.name(name, 'user name')}/disable"))

    def create_token(
        self,
        *,
        name: str = "default",
        user: str | None = None,
        expires_at: float | None = None,
        project: str | None = None,
        role: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApiToken:
        body = {"name": name, "user": user, "expires_at": expires_at}
        if project is not None or role is not None:
            body.update(project=project, role=role)
        return ApiToken.from_dict(self._write("POST", "/tokens", key=idempotency_key, body=body))

    def list_tokens(self, *, user: str | None = None) -> list[ApiToken]:
        params = {} if user is None else {"user": user}
        return [ApiToken.from_dict(x) for x in self._json("GET", "/tokens", params=params)["items"]]

    def revoke_token(self, token_id: int) -> ApiToken:
        v.integer(token_id, "token id", minimum=1)
        return ApiToken.from_dict(self._json("DELETE", f"/tokens/{token_id}"))

    def add_member(self, project: str, user: str, role: str) -> Membership:
        path = f"/projects/{w.project(project)}/members/{w.name(user, 'user name')}"
        return Membership.from_dict(self._json("PUT", path, body={"role": role}))

    def list_members(self, project: str) -> list[Membership]:
        items = self._json("GET", f"/projects/{w.project(project)}/members")["items"]
        return [Membership.from_dict(m) for m in items]

    def remove_member(self, project: str, user: str) -> None:
        path = f"/projects/{w.project(project)}/members/{w.name(user, 'user name')}"
        self._call("DELETE", path)


def _artifact_path(project: str, name: str, version: int) -> str:
    number = v.integer(version, "artifact version", minimum=1)
    return (
        f"/projects/{w.project(project)}/artifacts/{w.name(name, 'artifact name')}"
        f"/versions/{number}"
    )
