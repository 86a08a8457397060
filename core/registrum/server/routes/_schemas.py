"""Request bodies. Strict: wrong JSON types are a 400, never coerced."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class CreateProject(Body):
    name: str
    description: str | None = None


class CreateRun(Body):
    project: str
    id: str | None = None
    name: str | None = None
    job_type: str | None = None
    parent_id: str | None = None
    user: str | None = None
    host: str | None = None
    description: str | None = None
    start_time: float | None = None
    config: dict[str, Any] | None = None
    tags: dict[str, str] | None = None


class UpdateRun(Body):
    name: str | None = None
    description: str | None = None


class SetStatus(Body):
    status: str
    end_time: float | None = None


class Params(Body):
    params: dict[str, Any]


class Tags(Body):
    tags: dict[str, str]


class CodeVersion(Body):
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool | None = None
    diff_sha256: str | None = None
    extra: dict[str, Any] | None = None


class Search(Body):
    filter: str | None = None
    order_by: str | list[str] | None = None
    limit: int = 100
    cursor: str | None = None


class RunInput(Body):
    kind: str
    target_id: int
    role: str = "input"


class FileEntry(Body):
    path: str
    sha256: str
    size: int


class CreateArtifact(Body):
    name: str
    type: str
    files: list[FileEntry]
    run_id: str | None = None
    metadata: dict[str, Any] | None = None


class MissingBlobs(Body):
    sha256s: list[str]


class LogDataset(Body):
    name: str
    fingerprint: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    rows: int | None = None
    metadata: dict[str, Any] | None = None
    artifact_id: int | None = None
    run_id: str | None = None
    role: str = "input"

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class CreateModel(Body):
    name: str
    project: str
    description: str | None = None
    tags: dict[str, str] | None = None


class UpdateModel(Body):
    description: str | None = None
    tags: dict[str, str] | None = None


class RegisterVersion(Body):
    project: str | None = None
    run_id: str | None = None
    artifact_id: int | None = None
    files: list[FileEntry] | None = None
    flavor: str | None = None
    signature: dict[str, Any] | None = None
    metrics: dict[str, float | str] | None = None
    params: dict[str, Any] | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    aliases: list[str] = []


class SetAlias(Body):
    version: int
    expected_version: int | None = None
