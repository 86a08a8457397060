"""`HttpStore`: the service layer's API, spoken over HTTP to a `registrum server`.

Same method names, arguments, records and errors as `registrum.store.Store`,
so code (and the contract tests) run unchanged against either.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TypeGuard
from urllib.parse import quote

import requests

from registrum.entities import (
    UNSET,
    Artifact,
    DatasetVersion,
    IngestResult,
    MetricHistory,
    MetricSummary,
    ModelVersion,
    Page,
    Project,
    RegisteredModel,
    Run,
    _Unset,
    decode_float,
    decode_nonfinite,
    encode_float,
    encode_nonfinite,
)
from registrum.errors import (
    BlobNotFound,
    FilterSyntaxError,
    InvalidArgument,
    NotFound,
    RegistrumError,
    StoreError,
    StoreUnavailable,
    error_for_code,
)
from registrum.store import validation as v
from registrum.store.blobs import BlobInfo

_CHUNK = 1 << 20


def _q(segment: str) -> str:
    return quote(segment, safe="")


# Path segments are checked with the store's own rules before they go into a
# URL: an empty or slash-holding segment would otherwise reach another route.


def _run(run_id: Any) -> str:
    return _q(v.run_id(run_id))


def _key(key: Any) -> str:
    return _q(v.key(key))


def _sha(sha256: Any) -> str:
    return _q(v.sha256(sha256))


def _project(name: Any) -> str:
    return _q(v.name(name, "project name"))


def _model(name: Any) -> str:
    return _q(v.name(name, "model name"))


def _name(name: Any, what: str) -> str:
    return _q(v.name(name, what))


def _alias(alias: Any) -> str:
    return _q(v.alias(alias))


def _version(version: Any) -> str:
    number = v.version(version)
    return "latest" if number is None else str(number)


def _ref(ref: Any) -> str:
    """`name@3` -> `name/versions/3` (also aliases and latest)."""
    name, part = v.model_ref(ref)
    return f"{_q(name)}/versions/{_q('latest' if part is None else str(part))}"


def _dumps(body: Any) -> bytes:
    """Strict JSON: non-string keys and non-finite floats are the caller's error,
    as they are in-process (values that may be non-finite are encoded first)."""
    _check_json(body, "body")
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"request is not JSON-serialisable: {exc}") from None


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise InvalidArgument(f"{where}: key {k!r} must be a string")
            _check_json(x, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, x in enumerate(value):
            _check_json(x, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{where} is {value}, which JSON cannot hold")


def _dumps_batch(body: dict[str, Any]) -> bytes:
    """A metric batch, whose values are already encoded: fast path."""
    try:
        import orjson

        return orjson.dumps(body)
    except ImportError:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def _loads(content: bytes) -> Any:
    try:
        import orjson

        return orjson.loads(content)
    except ImportError:
        return json.loads(content)


def _encode_floats(values: Any) -> list[Any]:
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    if all(type(x) is int or (type(x) is float and math.isfinite(x)) for x in items):
        return items
    return [encode_float(x) if isinstance(x, float) else x for x in items]


class HttpStore:
    """A `Store` behind `registrum server`.

    Args:
        url: the server, e.g. `http://127.0.0.1:8765`.
        token: bearer token sent with every request (`REGISTRUM_TOKEN`).
        timeout: seconds to wait for a connection and for each read.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api = f"{self.url}/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["user-agent"] = "registrum-client"
        if token:
            self.session.headers["authorization"] = f"Bearer {token}"

    # -- plumbing -------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, body: Any = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if body is not None:
            kwargs["data"] = body if isinstance(body, bytes) else _dumps(body)
            headers["content-type"] = "application/json"
        try:
            response = self.session.request(
                method, f"{self.api}{path}", headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.ConnectionError as exc:
            raise StoreUnavailable(
                f"cannot reach the registrum server at {self.url}: {exc}"
            ) from None
        except requests.Timeout:
            raise StoreUnavailable(
                f"the registrum server at {self.url} did not answer in {self.timeout}s"
            ) from None
        except requests.RequestException as exc:
            raise StoreError(f"request to {self.url} failed: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        return _loads(response.content) if response.content else None

    def close(self) -> None:
        self.session.close()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    # -- projects -------------------------------------------------------------

    def create_project(self, name: str, *, description: str | None = None) -> Project:
        return Project.from_dict(
            self._json("POST", "/projects", body={"name": name, "description": description})
        )

    def get_project(self, name: str) -> Project:
        return Project.from_dict(self._json("GET", f"/projects/{_project(name)}"))

    def _pages(
        self, path: str, params: dict[str, Any], limit: int | None, offset: int
    ) -> list[Any]:
        """Items `offset`..`offset + limit` of a paginated list, following its cursors."""
        if limit is not None:
            v.integer(limit, "limit", minimum=1)
        v.integer(offset, "offset", minimum=0)
        wanted = None if limit is None else offset + limit
        items: list[Any] = []
        cursor = None
        while wanted is None or len(items) < wanted:
            query = {k: x for k, x in params.items() if x is not None}
            query["limit"] = 1000 if wanted is None else min(1000, wanted - len(items))
            if cursor:
                query["cursor"] = cursor
            data = self._json("GET", path, params=query)
            items.extend(data["items"])
            cursor = data["next_cursor"]
            if not cursor:
                break
        return items[offset:wanted]

    def list_projects(self, *, limit: int | None = None, offset: int = 0) -> list[Project]:
        return [Project.from_dict(p) for p in self._pages("/projects", {}, limit, offset)]

    # -- runs -----------------------------------------------------------------

    def create_run(self, project: str, *, run_id: str | None = None, **fields: Any) -> Run:
        body = {
            "project": project,
            "id": run_id,
            **{k: val for k, val in fields.items() if val is not None},
        }
        if isinstance(body.get("config"), Mapping):
            body["config"] = encode_nonfinite(dict(body["config"]))
        return Run.from_dict(self._json("POST", "/runs", body=body))

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._json("GET", f"/runs/{_run(run_id)}"))

    def update_run(
        self, run_id: str, *, name: str | None = None, description: str | None = None
    ) -> Run:
        body = {"name": name, "description": description}
        return Run.from_dict(self._json("PATCH", f"/runs/{_run(run_id)}", body=body))

    def set_run_status(self, run_id: str, status: str, *, end_time: float | None = None) -> Run:
        body = {"status": status, "end_time": end_time}
        return Run.from_dict(self._json("POST", f"/runs/{_run(run_id)}/status", body=body))

    def finish_run(
        self, run_id: str, status: str = "finished", *, end_time: float | None = None
    ) -> Run:
        if status == "running":
            from registrum.errors import InvalidArgument

            raise InvalidArgument("finish_run needs a terminal status, not 'running'")
        return self.set_run_status(run_id, status, end_time=end_time)

    def heartbeat(self, run_id: str) -> None:
        self._call("POST", f"/runs/{_run(run_id)}/heartbeat")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST",
            f"/runs/{_run(run_id)}/params",
            body={"params": encode_nonfinite(params) if isinstance(params, dict) else params},
        )["params"]
        result = {k: decode_nonfinite(x) for k, x in result.items()}
        return result

    def param_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json(
            "GET", f"/runs/{_run(run_id)}/params/{_key(key)}/history"
        )["items"]
        return items

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call("PATCH", f"/runs/{_run(run_id)}/tags", body={"tags": tags})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{_run(run_id)}/tags/{_key(key)}")

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        self._call("PUT", f"/runs/{_run(run_id)}/environment", body=environment)

    def get_environment(self, run_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("GET", f"/runs/{_run(run_id)}/environment")
        return result

    def set_code_version(self, run_id: str, **fields: Any) -> None:
        self._call("PUT", f"/runs/{_run(run_id)}/code", body=fields)

    def get_code_version(self, run_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("GET", f"/runs/{_run(run_id)}/code")
        return result

    def add_run_input(self, run_id: str, *, kind: str, target_id: int, role: str = "input") -> None:
        self._call(
            "POST",
            f"/runs/{_run(run_id)}/inputs",
            body={"kind": kind, "target_id": target_id, "role": role},
        )

    def run_inputs(self, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/runs/{_run(run_id)}/inputs")["items"]
        return items

    def search_runs(
        self,
        project: str,
        *,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        body = {"filter": filter, "order_by": order_by, "limit": limit, "cursor": cursor}
        data = self._json("POST", f"/projects/{_project(project)}/runs/search", body=body)
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
        steps: Any,
        values: Any,
        timestamps: Any = None,
    ) -> IngestResult:
        body: dict[str, Any] = {
            "seq": seq,
            "keys": list(keys) if isinstance(keys, tuple) else keys,
            "steps": steps.tolist() if hasattr(steps, "tolist") else steps,
            "values": _encode_floats(values) if isinstance(values, Iterable) else values,
        }
        if timestamps is not None:
            body["timestamps"] = (
                _encode_floats(timestamps) if isinstance(timestamps, Iterable) else timestamps
            )
        return IngestResult.from_dict(
            self._json("POST", f"/runs/{_run(run_id)}/metrics", body=_dumps_batch(body))
        )

    def metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        data = self._json("GET", f"/runs/{_run(run_id)}/metrics")
        return {k: MetricSummary.from_dict(m) for k, m in data.items()}

    def metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricHistory:
        import numpy as np

        params = {} if max_points is None else {"max_points": v.integer(max_points, "max_points")}
        data = self._json("GET", f"/runs/{_run(run_id)}/metrics/{_key(key)}", params=params)
        values = data["values"]
        if any(type(x) is str for x in values):
            values = [decode_float(x) for x in values]
        return MetricHistory(
            run_id=data["run_id"],
            key=data["key"],
            steps=np.asarray(data["steps"], dtype=np.int64),
            values=np.asarray(values, dtype=np.float64),
            timestamps=np.asarray(data["timestamps"], dtype=np.float64),
            total=data["total"],
            downsampled=data["downsampled"],
        )

    # -- blobs ----------------------------------------------------------------

    def put_blob(
        self, stream: BinaryIO | Iterable[bytes], *, sha256: str | None = None
    ) -> BlobInfo:
        """Uploads content unless the server has it already.

        Without `sha256` the content is hashed first (spooled to a temporary
        file if it cannot be re-read), so a stored blob is never sent again.
        """
        with tempfile.TemporaryFile() as spool:
            if sha256 is None:
                sha256, stream = _hashed(stream, spool)
            try:
                return BlobInfo(sha256=sha256, size=self.blob_size(sha256))
            except BlobNotFound:
                pass
            data = self._json("PUT", f"/blobs/{_sha(sha256)}", data=_chunks(stream))
        return BlobInfo(sha256=data["sha256"], size=data["size"])

    def blob_exists(self, sha256: str) -> bool:
        try:
            self.blob_size(sha256)
        except BlobNotFound:
            return False
        return True

    def blob_size(self, sha256: str) -> int:
        try:
            response = self._call("HEAD", f"/blobs/{_sha(sha256)}")
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
        response = self._call("GET", f"/blobs/{_sha(sha256)}", headers=headers, stream=True)
        return _iter_body(response)

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
            self._json("POST", f"/projects/{_project(project)}/artifacts", body=body)
        )

    def get_artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact:
        return Artifact.from_dict(
            self._json(
                "GET",
                f"/projects/{_project(project)}/artifacts/{_name(name, 'artifact name')}"
                f"/versions/{_version(version)}",
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
    ) -> list[Artifact]:
        path = f"/projects/{_project(project)}/artifacts"
        items = self._pages(path, {"name": name, "run_id": run_id}, limit, offset)
        return [Artifact.from_dict(a) for a in items]

    def log_dataset(
        self, project: str, name: str, *, fingerprint: str, **fields: Any
    ) -> DatasetVersion:
        body = {
            "name": name,
            "fingerprint": fingerprint,
            **{k: val for k, val in fields.items() if val is not None},
        }
        return DatasetVersion.from_dict(
            self._json("POST", f"/projects/{_project(project)}/datasets", body=body)
        )

    def get_dataset(self, project: str, name: str, version: int | str = "latest") -> DatasetVersion:
        return DatasetVersion.from_dict(
            self._json(
                "GET",
                f"/projects/{_project(project)}/datasets/{_name(name, 'dataset name')}"
                f"/versions/{_version(version)}",
            )
        )

    def list_datasets(
        self, project: str, *, name: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetVersion]:
        path = f"/projects/{_project(project)}/datasets"
        items = self._pages(path, {"name": name}, limit, offset)
        return [DatasetVersion.from_dict(d) for d in items]

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
        return RegisteredModel.from_dict(self._json("GET", f"/models/{_model(name)}"))

    def list_models(
        self, *, project: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[RegisteredModel]:
        items = self._pages("/models", {"project": project}, limit, offset)
        return [RegisteredModel.from_dict(m) for m in items]

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        body = {"description": description, "tags": tags}
        return RegisteredModel.from_dict(self._json("PATCH", f"/models/{_model(name)}", body=body))

    def register_model_version(self, name: str, **fields: Any) -> ModelVersion:
        if fields.get("metrics") is not None and isinstance(fields["metrics"], Mapping):
            fields["metrics"] = {
                k: encode_float(float(x)) if isinstance(x, float) else x
                for k, x in fields["metrics"].items()
            }
        if isinstance(fields.get("aliases"), tuple):
            fields["aliases"] = list(fields["aliases"])
        body = {k: val for k, val in fields.items() if val is not None}
        return ModelVersion.from_dict(
            self._json("POST", f"/models/{_model(name)}/versions", body=body)
        )

    def get_model_version(self, ref: str) -> ModelVersion:
        return ModelVersion.from_dict(self._json("GET", f"/models/{_ref(ref)}"))

    def list_model_versions(
        self, name: str, *, limit: int | None = None, offset: int = 0
    ) -> list[ModelVersion]:
        items = self._pages(f"/models/{_model(name)}/versions", {}, limit, offset)
        return [ModelVersion.from_dict(m) for m in items]

    def update_model_version(
        self, ref: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        body = {"description": description, "tags": tags}
        return ModelVersion.from_dict(self._json("PATCH", f"/models/{_ref(ref)}", body=body))

    def set_alias(
        self, name: str, alias: str, version: int, *, expected_version: int | _Unset | None = UNSET
    ) -> ModelVersion:
        body: dict[str, Any] = {"version": version}
        if not isinstance(expected_version, _Unset):
            body["expected_version"] = expected_version
        return ModelVersion.from_dict(
            self._json("PUT", f"/models/{_model(name)}/aliases/{_alias(alias)}", body=body)
        )

    def delete_alias(
        self, name: str, alias: str, *, expected_version: int | _Unset | None = UNSET
    ) -> None:
        params = {}
        if isinstance(expected_version, int):
            params["expected_version"] = expected_version
        self._call("DELETE", f"/models/{_model(name)}/aliases/{_alias(alias)}", params=params)


def _hashed(
    stream: BinaryIO | Iterable[bytes], spool: BinaryIO
) -> tuple[str, BinaryIO | Iterable[bytes]]:
    """The content's sha256, and a stream to read it again from the start
    (the same stream rewound, or `spool` holding a copy)."""
    h = hashlib.sha256()
    if _seekable(stream):
        start = stream.tell()
        for chunk in _chunks(stream):
            h.update(chunk)
        stream.seek(start)
        return h.hexdigest(), stream
    for chunk in _chunks(stream):
        h.update(chunk)
        spool.write(chunk)
    spool.seek(0)
    return h.hexdigest(), spool


def _seekable(stream: Any) -> TypeGuard[BinaryIO]:
    return hasattr(stream, "read") and hasattr(stream, "seekable") and bool(stream.seekable())


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        reader: BinaryIO = stream  # type: ignore[assignment]
        yield from iter(lambda: reader.read(_CHUNK), b"")
    else:
        for chunk in stream:
            if chunk:
                yield bytes(chunk)


def _iter_body(response: requests.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(_CHUNK)
    finally:
        response.close()


def _error(response: requests.Response) -> RegistrumError:
    try:
        body = response.json()["error"]
        code, message = body.pop("code"), body.pop("message")
    except (ValueError, KeyError, TypeError):
        text = response.text[:500] if response.request.method != "HEAD" else ""
        code, message, body = "", f"HTTP {response.status_code} from the server: {text}", {}
        if response.status_code == 404:
            code = "not_found"
    cls = error_for_code(code)
    if cls is FilterSyntaxError:
        return FilterSyntaxError(message, position=int(body.get("position", 0)))
    if cls is RegistrumError:
        error = (
            StoreError(message) if response.status_code >= 500 else RegistrumError(message, **body)
        )
        error.status = response.status_code
        return error
    try:
        return cls(message, **body)
    except TypeError:
        return cls(message)
