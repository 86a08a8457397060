"""Request bodies. Strict: wrong JSON types are a 400, never coerced; unknown fields are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor


class BlobDigest(StringConvertor):
    """`{sha256:blob}`: a path segment naming a blob, never `missing` or `uploads`, so that
    `/blobs/missing` and `/blobs/uploads` are only their own resources (POST) and any other
    method there is a 405, not an attempt at a blob called "missing"."""

    regex = "(?!(?:missing|uploads)$)[^/]+"


register_url_convertor("blob", BlobDigest())


class Body(BaseModel):
    """Unknown fields are refused. Fields the service layer checks itself
    (names, tags, params, free-form objects) are `Any` here, so the caller
    gets the service's one precise error for them, the same as in-process."""

    model_config = ConfigDict(strict=True, extra="forbid")


class CreateProject(Body):
    name: Any
    description: Any = None


class CreateRun(Body):
    project: Any
    id: Any = None
    name: Any = None
    job_type: Any = None
    parent_id: Any = None
    user: Any = None
    host: Any = None
    description: Any = None
    start_time: float | None = None
    config: Any = None
    tags: Any = None


class UpdateRun(Body):
    name: Any = None
    description: Any = None


class MoveRun(Body):
    project: Any


class Retention(Body):
    keep_checkpoints: Any = None
    artifact_ttl: Any = None


class CollectGarbage(Body):
    older_than: Any = "7d"
    dry_run: bool = False


class SetStatus(Body):
    status: Any
    end_time: float | None = None


class Params(Body):
    params: Any


class Tags(Body):
    tags: Any


class CodeVersion(Body):
    commit: Any = None
    branch: Any = None
    remote: Any = None
    dirty: bool | None = None
    diff_sha256: Any = None
    extra: Any = None


class Search(Body):
    filter: str | None = None
    order_by: str | list[str] | None = None
    limit: int = 100
    cursor: str | None = None
    deleted: Any = "exclude"  # "exclude", "include" or "only"
    top_level: bool = False  # only runs without a parent


class RunInput(Body):
    kind: Any
    target_id: int
    role: Any = "input"


class CreateArtifact(Body):
    name: Any
    type: Any
    files: Any
    run_id: Any = None
    metadata: Any = None


class LogMedia(Body):
    key: Any
    step: Any
    kind: Any
    format: Any
    sha256: Any
    size: Any
    meta: Any = None


class MissingBlobs(Body):
    sha256s: list[str]


class LogDataset(Body):
    name: Any
    fingerprint: Any
    schema_: Any = Field(default=None, alias="schema")
    rows: int | None = None
    metadata: Any = None
    artifact_id: int | None = None
    run_id: Any = None
    role: Any = "input"

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class CreateModel(Body):
    name: Any
    project: Any
    description: Any = None
    tags: Any = None


class UpdateModel(Body):
    description: Any = None
    tags: Any = None


class RegisterVersion(Body):
    project: Any = None
    run_id: Any = None
    artifact_id: int | None = None
    files: Any = None
    flavor: Any = None
    signature: Any = None
    metrics: Any = None
    params: Any = None
    description: Any = None
    tags: Any = None
    aliases: Any = ()


class SetAlias(Body):
    version: int
    expected_version: int | None = None
