"""The records the store returns, the same over both transports.

Plain frozen dataclasses with `to_dict`/`from_dict`, so the HTTP server sends
exactly what the service layer returns and the HTTP client rebuilds it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar

T = TypeVar("T", bound="Record")

# Project roles, each with the rights of those before it.
ROLES = ("viewer", "editor", "reviewer", "admin")

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


def encode_floats(values: Any) -> list[Any]:
    """A list (or numpy array) of numbers for JSON, the non-finite ones as their markers."""
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    if all(type(x) is int or (type(x) is float and math.isfinite(x)) for x in items):
        return items
    return [encode_float(x) if isinstance(x, float) else x for x in items]


def decode_floats(items: list[Any]) -> list[Any]:
    """Inverse of `encode_floats`: markers become floats, other values are left as they are.

    A string that is not a marker raises `ValueError(index, value)`.
    """
    if str not in set(map(type, items)):
        return items
    out = list(items)
    for i, x in enumerate(items):
        if type(x) is str:
            try:
                out[i] = decode_float(x)
            except ValueError:
                raise ValueError(i, x) from None
    return out


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
    """Base of every record: dict conversion for the wire.

    `_decoders` names the fields whose JSON form needs turning back into
    Python values (non-finite markers, nested records).
    """

    _decoders: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Any:
        """`record["id"]` reads a field as `record.id` does, so code written when these
        answers were dicts keeps working; attribute access is the typed way."""
        if not isinstance(name, str) or name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        return getattr(self, name)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        decoders = cls._decoders
        kwargs = {
            k: decoders[k](x) if k in decoders and x is not None else x
            for k, x in data.items()
            if k in names
        }
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


def _each(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A decoder for every value of a dict or item of a list."""

    def decode_all(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: decode(x) for k, x in value.items()}
        return [decode(x) for x in value]

    return decode_all


@dataclass(frozen=True)
class Project(Record):
    id: int
    name: str
    description: str | None
    created_at: float
    deleted_at: float | None = None  # soft-deleted (restorable) when set
    # Retention: checkpoints kept per run beyond the best, and seconds after which the
    # artifacts of runs that registered nothing expire (None: kept).
    keep_checkpoints: int | None = None
    artifact_ttl: float | None = None


@dataclass(frozen=True)
class MetricSummary(Record):
    """A series' last point, range and size; `last_step` is a decimal (a float) for a
    series logged with decimal steps (`step_scale` > 0, see `MetricHistory`)."""

    key: str
    last: float
    last_step: int | float
    last_time: float
    min: float | None
    max: float | None
    count: int
    step_scale: int = 0

    def integer_last_step(self) -> int:
        """`last_step × 10**step_scale`, exact: what an integer-only reader (MLflow) is told."""
        scaled: float = self.last_step * 10**self.step_scale
        return round(scaled)


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
    deleted_at: float | None = None  # soft-deleted (restorable) when set


@dataclass(frozen=True)
class MetricHistory(Record):
    """A metric's points ordered by step; the arrays are numpy arrays or lists.

    `steps` are the steps as logged: integers, or, for a series logged with decimal steps
    (`step_scale` > 0, an import from Neptune), their decimal values as floats.
    """

    run_id: str
    key: str
    steps: Any
    values: Any
    timestamps: Any
    total: int
    downsampled: bool
    step_scale: int = 0

    def integer_steps(self) -> Any:
        """The steps as exact integers, `step × 10**step_scale` (the steps themselves when the
        scale is 0): what a reader that only takes integer steps (MLflow) is answered."""
        import numpy as np

        steps = np.asarray(self.steps)
        if not self.step_scale:
            return steps.astype(np.int64, copy=False)
        return np.rint(steps * 10**self.step_scale).astype(np.int64)

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
            "step_scale": self.step_scale,
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
class BlobInfo:
    """A stored blob: its sha256 hex digest and its size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class ArtifactFile(Record):
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Media(Record):
    """An image, figure, table or text a run logged under `key` at `step`. Its bytes are
    the run's file `path` (`Client.media_bytes`, or `GET /api/v1/runs/{id}/files/{path}`)."""

    run_id: str
    key: str
    step: int
    kind: str  # image, figure, table or text
    path: str
    media_type: str  # image/png, application/vnd.plotly.v1+json, application/json, text/plain
    sha256: str
    size: int
    meta: dict[str, Any]  # caption; width and height; columns and rows
    created_at: float


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
    deleted_at: float | None = None  # soft-deleted (restorable) when set


@dataclass(frozen=True)
class LoggedModel(Record):
    """MLflow 3's logged model: files that collect while `pending` and become the model
    artifact `artifact_id` of its run when it turns `ready`."""

    id: str
    project: str
    name: str
    status: str  # pending, ready or failed
    run_id: str | None
    model_type: str | None
    params: dict[str, str]
    tags: dict[str, str]
    artifact_id: int | None
    created_at: float
    updated_at: float


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
    deleted_at: float | None = None  # soft-deleted (restorable) when set


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
    deleted_at: float | None = None  # soft-deleted (restorable) when set

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


MetricSummary._decoders = {"last": decode_float, "min": decode_float, "max": decode_float}
Run._decoders = {
    "params": _each(decode_nonfinite),
    "metrics": _each(MetricSummary.from_dict),
}
Artifact._decoders = {"files": _each(ArtifactFile.from_dict)}
ModelVersion._decoders = {
    "artifact": Artifact.from_dict,
    "metrics": _each(decode_float),
    "params": _each(decode_nonfinite),
}


@dataclass(frozen=True)
class User(Record):
    """A user. `service`: a service account, which never signs in interactively (its
    tokens are made by a server admin). `email` and `groups` come from the identity
    provider at the user's last sign-in (None for users added by hand)."""

    id: int
    name: str
    server_admin: bool
    disabled: bool
    created_at: float
    service: bool = False
    email: str | None = None
    groups: list[str] | None = None


@dataclass(frozen=True)
class ApiToken(Record):
    """An API token's record; `token`, the secret itself, is there only when it is created.
    A scoped token (`project` and `role` set) may do at most `role` on `project`, whatever
    its user may do."""

    id: int
    user: str
    name: str
    prefix: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None
    token: str | None = None
    project: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Membership(Record):
    """A user's role on a project. `source`: None when given by hand, else what gave it at
    the user's last sign-in (`"groups: vision-team"`, from the server's role map)."""

    project: str
    user: str
    role: str
    created_at: float
    source: str | None = None


@dataclass(frozen=True)
class Webhook(Record):
    """A webhook subscription; `secret` is there only in the answer that created it."""

    id: str
    url: str
    events: list[str]
    project: str
    model: str | None
    created_by: str | None
    created_at: float
    secret: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # The wire shows the secret once: a hook read back has no `secret` key at all.
        data = super().to_dict()
        if self.secret is None:
            del data["secret"]
        return data


@dataclass(frozen=True)
class Delivery(Record):
    """One event's delivery to a webhook: its state, attempts and last outcome."""

    id: int
    webhook_id: str
    event_id: int
    action: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    last_attempt_at: float | None
    next_attempt_at: float | None
    delivered_at: float | None


@dataclass(frozen=True)
class Policy(Record):
    """A model's promotion policy: its protected aliases, who approves and how many, and the
    gates a version must pass (each a gate object, as `set_policy` checked it)."""

    model: str
    protected: list[str]
    approver_role: str
    approvals_needed: int
    allow_self_approval: bool
    gates: list[dict[str, Any]]


@dataclass(frozen=True)
class Vote(Record):
    voter: str
    decision: str
    comment: str | None
    at: float


@dataclass(frozen=True)
class PromotionRequest(Record):
    """A request to point a protected alias at a version: its votes, and its gates, each
    `{"gate": ..., "passed": ..., "detail": ...}` (evaluated live while it is open)."""

    id: int
    model: str
    project: str
    alias: str
    version: int
    from_version: int | None
    state: str
    requested_by: str
    comment: str | None
    created_at: float
    decided_by: str | None
    decided_at: float | None
    decision_comment: str | None
    votes: list[Vote]
    approvals: int
    approvals_needed: int
    gates: list[dict[str, Any]]


@dataclass(frozen=True)
class AliasMove(Record):
    """One move of an alias: from which version to which (None: unset or deleted), by whom,
    when, and the request that approved it, if any."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: float
    request_id: int | None


PromotionRequest._decoders = {"votes": _each(Vote.from_dict)}


@dataclass(frozen=True)
class AuditEvent(Record):
    """One entry of the audit trail: who did what to which entity, when, the entity's state
    before and after (JSON values, as recorded), and the event's link in the hash chain."""

    id: int
    at: float
    actor: str
    action: str
    entity_type: str
    entity_id: str
    project: str | None
    before: Any
    after: Any
    hash: str

    def to_dict(self) -> dict[str, Any]:
        # `before` and `after` go out exactly as recorded (the chain hashes them so).
        return {**super().to_dict(), "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Evaluation(Record):
    """The latest value of one metric that runs using a model version logged on one dataset
    version (`dataset` None: the runs used none), with the run that logged it."""

    version: int
    dataset: str | None
    metric: str
    value: float | None
    step: int
    time: float
    run_id: str
    run_status: str
    job_type: str | None


@dataclass(frozen=True)
class EvaluationHistory(Record):
    """A model's evaluation history: its evaluated versions, the dataset versions used (each
    a dict with its `id`, project, name and version), the metrics, and every evaluation."""

    model: str
    versions: list[int]
    datasets: list[dict[str, Any]]
    metrics: list[str]
    evaluations: list[Evaluation]


@dataclass(frozen=True)
class GcReport(Record):
    """What a collection removed (or, in a dry run, would remove)."""

    dry_run: bool
    older_than: float
    model_versions: int = 0
    models: int = 0
    artifacts: int = 0
    runs: int = 0
    projects: int = 0
    blobs: int = 0
    bytes: int = 0
    kept_in_use: int = 0  # deleted runs and artifacts kept because something live uses them
    expired: int = 0  # checkpoints and artifacts a retention policy deleted now
    seconds: float = 0.0
    per_project: dict[str, dict[str, int]] = field(default_factory=dict)


# Audit actions that come by the thousand (every metric batch, every stored blob): the
# command line's `audit list` leaves them out unless asked (`--all`, or `--action`).
AUDIT_NOISE = ("metrics.logged", "metrics.step_scale_set", "blob.stored")


@dataclass(frozen=True)
class LineageEdge(Record):
    source: str
    target: str
    role: str


@dataclass(frozen=True)
class LineageGraph(Record):
    """The nodes (dicts with `id`, `type`, `label` and what their kind has) and edges
    reachable from the `start` nodes; `truncated` when the size limit cut it."""

    start: list[str]
    nodes: list[dict[str, Any]]
    edges: list[LineageEdge]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        # Nodes go out as described, their values untouched.
        return {**super().to_dict(), "nodes": self.nodes}


Evaluation._decoders = {"value": decode_float}
EvaluationHistory._decoders = {"evaluations": _each(Evaluation.from_dict)}
LineageGraph._decoders = {"edges": _each(LineageEdge.from_dict)}
