"""The records the store returns, the same over both transports.

Plain frozen dataclasses with `to_dict`/`from_dict`, so the HTTP server sends
exactly what the service layer returns and the HTTP client rebuilds it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

T = TypeVar("T", bound="Record")

NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float | None) -> float | str | None:
    """JSON has no NaN or infinities: they travel as the strings "NaN", "Infinity", "-Infinity"."""
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_float(value: Any) -> float:
    """Inverse of `encode_float`; raises ValueError for anything that is not a number."""
    if isinstance(value, str):
        try:
            return NONFINITE[value]
        except KeyError:
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def decode_nonfinite(value: Any) -> Any:
    """The float a non-finite marker string stands for; any other value unchanged."""
    return NONFINITE.get(value, value) if isinstance(value, str) else value


def encode_nonfinite(value: Any) -> Any:
    """`value` with every non-finite float, at any depth, as its marker string."""
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, dict):
        return {k: encode_nonfinite(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [encode_nonfinite(x) for x in value]
    return value


class _Unset:
    """The type of `UNSET`: an argument that was not given (distinct from None)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class Record:
    """Base of every record: dict conversion for the wire."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: _decode_field(cls, k, v) for k, v in data.items() if k in names}
        return cls(**kwargs)


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


_FLOAT_FIELDS = {"last", "min", "max", "value"}
_NESTED: dict[tuple[str, str], type[Record]] = {}


def _decode_field(cls: type[Record], name: str, value: Any) -> Any:
    nested = _NESTED.get((cls.__name__, name))
    if nested is not None and value is not None:
        if isinstance(value, list):
            return [nested.from_dict(v) for v in value]
        if isinstance(value, dict) and name in ("metrics",) and cls is Run:
            return {k: nested.from_dict(v) for k, v in value.items()}
        return nested.from_dict(value)
    if name == "params" and isinstance(value, dict):
        return {k: decode_nonfinite(x) for k, x in value.items()}
    if name in _FLOAT_FIELDS and isinstance(value, str):
        return decode_float(value)
    if cls is MetricHistory and name == "values":
        return [decode_float(v) for v in value]
    if cls is ModelVersion and name == "metrics" and isinstance(value, dict):
        return {k: decode_float(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Project(Record):
    id: int
    name: str
    description: str | None
    created_at: float


@dataclass(frozen=True)
class MetricSummary(Record):
    key: str
    last: float
    last_step: int
    last_time: float
    min: float | None
    max: float | None
    count: int


@dataclass(frozen=True)
class Run(Record):
    id: str
    project: str
    name: str | None
    status: str
    job_type: str | None
    parent_id: str | None
    user: str | None
    host: str | None
    start_time: float
    end_time: float | None
    heartbeat_at: float | None
    description: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricHistory(Record):
    """A metric's points ordered by step; the arrays are numpy arrays or lists."""

    run_id: str
    key: str
    steps: Any
    values: Any
    timestamps: Any
    total: int
    downsampled: bool

    def to_dict(self) -> dict[str, Any]:
        values = self.values.tolist() if hasattr(self.values, "tolist") else list(self.values)
        return {
            "run_id": self.run_id,
            "key": self.key,
            "steps": self.steps.tolist() if hasattr(self.steps, "tolist") else list(self.steps),
            "values": [encode_float(x) for x in values],
            "timestamps": (
                self.timestamps.tolist()
                if hasattr(self.timestamps, "tolist")
                else list(self.timestamps)
            ),
            "total": self.total,
            "downsampled": self.downsampled,
        }

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class IngestResult(Record):
    run_id: str
    seq: int
    points: int
    duplicate: bool


@dataclass(frozen=True)
class Page(Record):
    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class ArtifactFile(Record):
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Artifact(Record):
    id: int
    project: str
    name: str
    version: int
    type: str
    digest: str
    run_id: str | None
    size: int
    file_count: int
    metadata: dict[str, Any]
    created_at: float
    files: list[ArtifactFile] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetVersion(Record):
    id: int
    project: str
    name: str
    version: int
    fingerprint: str
    schema: dict[str, Any]
    rows: int | None
    metadata: dict[str, Any]
    artifact_id: int | None
    created_at: float


@dataclass(frozen=True)
class RegisteredModel(Record):
    id: int
    name: str
    project: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    tags: dict[str, str]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ModelVersion(Record):
    id: int
    model: str
    version: int
    project: str
    run_id: str | None
    artifact: Artifact
    flavor: str | None
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    params: dict[str, Any]
    description: str | None
    aliases: list[str]
    tags: dict[str, str]
    created_at: float
    updated_at: float

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


_NESTED.update(
    {
        ("Run", "metrics"): MetricSummary,
        ("Artifact", "files"): ArtifactFile,
        ("ModelVersion", "artifact"): Artifact,
    }
)
