"""The two ways to a store, one interface: the service layer in-process, or HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

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
)
from registrum.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    from registrum.client.http import HttpStore
    from registrum.store import Store


class Transport(Protocol):
    """What the client side asks of a store: `registrum.store.Store` in-process and
    `registrum.client.http.HttpStore` over HTTP both answer it, with the same names,
    arguments, records and errors (`_both_are_transports` makes mypy hold them to it)."""

    def create_project(self, name: str, *, description: str | None = None) -> Project: ...

    def get_project(self, name: str, *, include_deleted: bool = False) -> Project: ...

    def list_projects(
        self, *, limit: int | None = None, offset: int = 0, include_deleted: bool = False
    ) -> list[Project]: ...

    def set_retention(
        self,
        project: str,
        *,
        keep_checkpoints: int | None = None,
        artifact_ttl: float | str | None = None,
    ) -> Project: ...

    def apply_retention(self, project: str) -> dict[str, dict[str, int]]: ...

    def delete_project(self, name: str) -> None: ...

    def collect_garbage(
        self, older_than: float | str = 7 * 86400.0, *, dry_run: bool = False
    ) -> GcReport: ...

    def restore_project(self, name: str) -> Project: ...

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
    ) -> Run: ...

    def get_run(self, run_id: str) -> Run: ...

    def update_run(
        self, run_id: str, *, name: str | None = None, description: str | None = None
    ) -> Run: ...

    def move_run(self, run_id: str, project: str) -> Run: ...

    def delete_run(self, run_id: str) -> None: ...

    def restore_run(self, run_id: str) -> Run: ...

    def set_run_status(self, run_id: str, status: str, *, end_time: float | None = None) -> Run: ...

    def finish_run(
        self, run_id: str, status: str = "finished", *, end_time: float | None = None
    ) -> Run: ...

    def heartbeat(self, run_id: str) -> None: ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def param_history(self, run_id: str, key: str) -> list[dict[str, Any]]: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def delete_tag(self, run_id: str, key: str) -> None: ...

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None: ...

    def get_environment(self, run_id: str) -> dict[str, Any] | None: ...

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
    ) -> None: ...

    def get_code_version(self, run_id: str) -> dict[str, Any] | None: ...

    def add_run_input(
        self, run_id: str, *, kind: str, target_id: int, role: str = "input"
    ) -> None: ...

    def run_inputs(self, run_id: str) -> list[dict[str, Any]]: ...

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
    ) -> Page: ...

    def log_metrics(
        self,
        run_id: str,
        *,
        seq: int,
        keys: Sequence[str],
        steps: Sequence[int] | np.ndarray[Any, Any],
        values: Sequence[float] | np.ndarray[Any, Any],
        timestamps: Sequence[float] | np.ndarray[Any, Any] | None = None,
    ) -> IngestResult: ...

    def set_metric_step_scale(self, run_id: str, key: str, scale: int) -> None: ...

    def metric_summaries(self, run_id: str) -> dict[str, MetricSummary]: ...

    def metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricHistory: ...

    def put_blob(
        self, stream: BinaryIO | Iterable[bytes], *, sha256: str | None = None
    ) -> BlobInfo: ...

    def blob_exists(self, sha256: str) -> bool: ...

    def blob_size(self, sha256: str) -> int: ...

    def missing_blobs(self, sha256s: Sequence[str]) -> list[str]: ...

    def read_blob(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def list_run_files(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]: ...

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
    ) -> Media: ...

    def list_media(self, run_id: str, key: str | None = None) -> list[Media]: ...

    def get_media(self, run_id: str, key: str, step: int) -> Media: ...

    def get_run_file(self, run_id: str, path: str) -> ArtifactFile: ...

    def create_artifact(
        self,
        project: str,
        name: str,
        *,
        type: str,
        files: Sequence[Mapping[str, Any]],
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact: ...

    def get_artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact: ...

    def get_artifact_by_id(self, artifact_id: int) -> Artifact: ...

    def list_artifacts(
        self,
        project: str,
        *,
        name: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[Artifact]: ...

    def delete_artifact(self, project: str, name: str, version: int) -> None: ...

    def restore_artifact(self, project: str, name: str, version: int) -> Artifact: ...

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
    ) -> DatasetVersion: ...

    def get_dataset(
        self, project: str, name: str, version: int | str = "latest"
    ) -> DatasetVersion: ...

    def list_datasets(
        self, project: str, *, name: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetVersion]: ...

    def lineage(self, node: str, *, direction: str = "both", depth: int = 3) -> LineageGraph: ...

    def evaluations(self, name: str) -> EvaluationHistory: ...

    def diff_datasets(
        self, project: str, name: str, a: int | str, b: int | str
    ) -> dict[str, Any]: ...

    def dataset_models(
        self, project: str, name: str, *, version: int | str | None = None
    ) -> list[dict[str, Any]]: ...

    def compare_code(self, run_a: str, run_b: str) -> dict[str, Any]: ...

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
    ) -> list[AuditEvent]: ...

    def verify_audit(
        self, anchors: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]: ...

    def audit_anchor(self) -> dict[str, Any]: ...

    def create_model(
        self,
        name: str,
        *,
        project: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel: ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def list_models(
        self,
        *,
        project: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[RegisteredModel]: ...

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel: ...

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
    ) -> ModelVersion: ...

    def get_model_version(self, ref: str, *, at: float | str | None = None) -> ModelVersion: ...

    def list_model_versions(
        self,
        name: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[ModelVersion]: ...

    def update_model_version(
        self, ref: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion: ...

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel: ...

    def delete_model(self, name: str) -> None: ...

    def restore_model(self, name: str) -> RegisteredModel: ...

    def delete_model_version(self, ref: str, *, remove_aliases: bool = False) -> None: ...

    def restore_model_version(self, ref: str) -> ModelVersion: ...

    def delete_model_version_tag(self, ref: str, key: str) -> ModelVersion: ...

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected_version: int | _Unset | None = UNSET,
        idempotency_key: str | None = None,
    ) -> ModelVersion: ...

    def delete_alias(
        self, name: str, alias: str, *, expected_version: int | _Unset = UNSET
    ) -> None: ...

    def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        project: str | None = None,
        model: str | None = None,
        secret: str | None = None,
        idempotency_key: str | None = None,
    ) -> Webhook: ...

    def get_webhook(self, webhook_id: str) -> Webhook: ...

    def list_webhooks(
        self,
        *,
        project: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Webhook]: ...

    def delete_webhook(self, webhook_id: str) -> None: ...

    def list_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Delivery]: ...

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
    ) -> Policy: ...

    def get_policy(self, name: str) -> Policy: ...

    def request_promotion(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> PromotionRequest: ...

    def list_requests(
        self,
        name: str,
        *,
        state: str | None = None,
        alias: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PromotionRequest]: ...

    def get_request(self, request_id: int) -> PromotionRequest: ...

    def approve_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest: ...

    def reject_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest: ...

    def cancel_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest: ...

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[AliasMove]: ...

    def whoami(self) -> User: ...

    def create_user(
        self,
        name: str,
        *,
        server_admin: bool = False,
        service: bool = False,
        idempotency_key: str | None = None,
    ) -> User: ...

    def list_users(self) -> list[User]: ...

    def disable_user(self, name: str) -> User: ...

    def create_token(
        self,
        *,
        name: str = "default",
        user: str | None = None,
        expires_at: float | None = None,
        project: str | None = None,
        role: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApiToken: ...

    def list_tokens(self, *, user: str | None = None) -> list[ApiToken]: ...

    def revoke_token(self, token_id: int) -> ApiToken: ...

    def add_member(self, project: str, user: str, role: str) -> Membership: ...

    def list_members(self, project: str) -> list[Membership]: ...

    def remove_member(self, project: str, user: str) -> None: ...

    def close(self) -> None: ...


def open_transport(store: str | None, *, home: Path, token: str | None = None) -> Transport:
    """A `Store` (embedded) or an `HttpStore` for `store`.

    `store` is an `http(s)://` server, a `sqlite:///` or `postgresql+psycopg://`
    database URL, or None for the embedded store under `home`.
    """
    if store is not None and not isinstance(store, str):
        raise InvalidArgument(f"store must be a URL string, got {type(store).__name__}")
    if store and store.startswith(("http://", "https://")):
        from registrum.client.http import HttpStore

        return HttpStore(store, token=token, timeout=30.0)
    from registrum.store import open_store

    if store is None:
        home.mkdir(parents=True, exist_ok=True)
        return open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
    return open_store(store)


def _both_are_transports(store: Store, http: HttpStore) -> tuple[Transport, Transport]:
    """Never called: mypy checks here that both transports satisfy `Transport`."""
    return store, http
