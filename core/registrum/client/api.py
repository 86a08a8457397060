"""`registrum.Client`: queries over the store — runs, metrics, models, aliases, downloads."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registrum import validation as v
from registrum.client import files as f
from registrum.client.settings import ClientSettings
from registrum.client.transport import Transport, open_transport
from registrum.entities import (
    UNSET,
    AliasMove,
    ApiToken,
    Artifact,
    ArtifactFile,
    AuditEvent,
    DatasetVersion,
    Delivery,
    EvaluationHistory,
    GcReport,
    LineageGraph,
    Media,
    Membership,
    MetricHistory,
    ModelVersion,
    Policy,
    Project,
    PromotionRequest,
    RegisteredModel,
    Run,
    User,
    Webhook,
    _Unset,
)
from registrum.errors import ArtifactNotFound, HashMismatch, InvalidArgument


class Client:
    """Reads (and curates) what runs recorded.

    Args:
        store: `http(s)://host:port`, a database URL, or None for `REGISTRUM_URL`,
            else the embedded store under `REGISTRUM_HOME`.
        token: bearer token for a server (default `REGISTRUM_TOKEN`).
    """

    def __init__(self, store: str | None = None, *, token: str | None = None) -> None:
        self.settings = ClientSettings.from_env(store=store)
        self._store: Transport = open_transport(
            self.settings.store, home=self.settings.home, token=token or self.settings.token
        )

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- projects -------------------------------------------------------------

    def create_project(self, name: str, *, description: str | None = None) -> Project:
        """Creates project `name` (its creator becomes its admin); `AlreadyExists` if taken."""
        project: Project = self._store.create_project(name, description=description)
        return project

    def projects(self, *, include_deleted: bool = False) -> list[Project]:
        """The projects the signed-in user may read, by name (deleted ones too with
        `include_deleted`)."""
        projects: list[Project] = self._store.list_projects(include_deleted=include_deleted)
        return projects

    def delete_project(self, name: str) -> None:
        """Soft-deletes a project (a project admin) with its runs and artifacts: it leaves
        lists, refuses new runs, and stays restorable until collected (`registrum gc`).
        Refused (`Conflict`) while it holds registered models: delete those first."""
        self._store.delete_project(name)

    def collect_garbage(self, older_than: float | str = "7d", *, dry_run: bool = False) -> GcReport:
        """Removes for good what was deleted longer ago than `older_than` (seconds, or a
        duration such as "12h" or "7d"), then the blobs nothing references, and says what
        went; a server admin. Registered versions and what they stand on are never
        collected. With `dry_run`, says what would go and removes nothing."""
        report: GcReport = self._store.collect_garbage(older_than, dry_run=dry_run)
        return report

    def set_retention(
        self,
        project: str,
        *,
        keep_checkpoints: int | None = None,
        artifact_ttl: float | str | None = None,
    ) -> Project:
        """Sets a project's retention policy (a project admin): per run, checkpoints beyond
        the newest `keep_checkpoints` (and beyond the best, always kept) are deleted, and the
        artifacts of runs that registered nothing expire `artifact_ttl` after they were made
        (seconds, or a duration such as "30d"). None keeps everything of that kind.
        Registered versions and what they stand on never expire. Applied by every garbage
        collection, or now by `apply_retention`."""
        updated: Project = self._store.set_retention(
            project, keep_checkpoints=keep_checkpoints, artifact_ttl=artifact_ttl
        )
        return updated

    def apply_retention(self, project: str) -> dict[str, int]:
        """Applies the project's policy now: deletes what it no longer keeps (restorable
        until collected); says how many checkpoints and artifacts went."""
        applied: dict[str, dict[str, int]] = self._store.apply_retention(project)
        return applied.get(project, {"checkpoints": 0, "artifacts": 0})

    def restore_project(self, name: str) -> Project:
        """Brings a deleted project back, with the runs and artifacts deleted with it."""
        project: Project = self._store.restore_project(name)
        return project

    def project(self, name: str) -> Project:
        project: Project = self._store.get_project(name)
        return project

    # -- runs -----------------------------------------------------------------

    def runs(
        self,
        project: str,
        *,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = 50,
        include_deleted: bool = False,
        top_level: bool = False,
    ) -> list[Run]:
        """Runs of a project matching `filter` (the search language), ordered by `order_by`;
        `top_level`: only runs without a parent (not a sweep's trials or child runs).

        Example: `filter="metrics.val_loss < 0.3 and params.lr = 0.001"`,
        `order_by="-metrics.val_acc"`.
        """
        runs: list[Run] = []
        cursor = None
        while len(runs) < limit:
            page = self._store.search_runs(
                project,
                filter=filter,
                order_by=order_by,
                limit=min(limit - len(runs), 1000),
                cursor=cursor,
                deleted="include" if include_deleted else "exclude",
                top_level=top_level,
            )
            runs.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return runs

    def run(self, run_id: str) -> Run:
        run: Run = self._store.get_run(run_id)
        return run

    def set_run_name(self, run_id: str, name: str) -> Run:
        """Renames a run (an editor of its project); audited."""
        run: Run = self._store.update_run(run_id, name=name)
        return run

    def delete_run(self, run_id: str) -> None:
        """Soft-deletes a run (an editor): it leaves lists and searches (`runs(...,
        include_deleted=True)` shows it) and stays restorable until collected. Refused
        (`Conflict`) while a live model version was registered from it."""
        self._store.delete_run(run_id)

    def restore_run(self, run_id: str) -> Run:
        run: Run = self._store.restore_run(run_id)
        return run

    def move_run(self, run_id: str, project: str) -> Run:
        """Moves a run, with its child runs, to `project` (you must be an editor of both):
        its metrics, params, artifacts and logged models go with it; lineage is kept; an
        artifact takes the next free version of its name there."""
        run: Run = self._store.move_run(run_id, project)
        return run

    def set_run_description(self, run_id: str, description: str) -> Run:
        """Describes a run (an editor of its project); audited."""
        run: Run = self._store.update_run(run_id, description=description)
        return run

    def metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricHistory:
        """A metric's steps, values and times (numpy arrays), whole or downsampled."""
        history: MetricHistory = self._store.metric_history(run_id, key, max_points=max_points)
        return history

    # -- media ----------------------------------------------------------------------

    def media(self, run_id: str, key: str | None = None) -> list[Media]:
        """The images, figures, tables and texts a run logged (or those of `key`), by key,
        then step."""
        found: list[Media] = self._store.list_media(run_id, key)
        return found

    def media_bytes(self, run_id: str, key: str, step: int) -> bytes:
        """The bytes of the media `key` logged at `step` (PNG, plotly JSON, table JSON or
        UTF-8 text: `Media.media_type` says which), checked against their sha256."""
        found = self._store.get_media(run_id, key, step)
        data = b"".join(self._store.read_blob(found.sha256))
        if hashlib.sha256(data).hexdigest() != found.sha256:
            raise HashMismatch(
                f"the bytes of {key!r} at step {step} do not match their sha256", key=key
            )
        return data

    def table(self, run_id: str, key: str, step: int) -> dict[str, list[Any]]:
        """A table `log_table` logged, as a dict of columns (`pandas.DataFrame(...)` takes
        it as it is)."""
        found = json.loads(self.media_bytes(run_id, key, step))
        return dict(zip(found["columns"], found["data"], strict=True))

    # -- run files ----------------------------------------------------------------

    def run_files(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]:
        """The run's file tree (what MLflow's `log_artifact`, `log_text` or `log_dict`
        wrote), by path: every file, or those under the folder `prefix`."""
        files: list[ArtifactFile] = self._store.list_run_files(run_id, prefix)
        return files

    def download_run_files(self, run_id: str, out: str | Path, *, path: str | None = None) -> Path:
        """Downloads the run's file or folder `path` (None: all its files) into the folder
        `out`, verified: a file keeps its name, a folder's files their paths inside it."""
        where = None if path is None else path.strip("/") or None
        manifest = [x.to_dict() for x in self._run_files_at(run_id, where)]
        shown = where or "files"
        return f.download(self._store, manifest, Path(out), label=f"downloading {shown}")

    def _run_files_at(self, run_id: str, where: str | None) -> list[ArtifactFile]:
        """The files at `where` (a file, or a folder's files), with paths relative to it."""
        if where is None:
            return self.run_files(run_id)
        try:
            found = self._store.get_run_file(run_id, where)
        except ArtifactNotFound:
            files = self.run_files(run_id, where)
            if not files:
                raise ArtifactNotFound(
                    f"run {run_id} has no file or folder {where!r}; list its files with "
                    "run_files (or `registrum runs files RUN`)",
                    path=where,
                ) from None
            cut = len(where) + 1
            return [ArtifactFile(x.path[cut:], x.sha256, x.size) for x in files]
        return [ArtifactFile(found.path.rsplit("/", 1)[-1], found.sha256, found.size)]

    # -- models ---------------------------------------------------------------

    def models(
        self, project: str | None = None, *, include_deleted: bool = False
    ) -> list[RegisteredModel]:
        """Registered models by name, of one project or all (deleted ones too, with their
        `deleted_at`, with `include_deleted`)."""
        models: list[RegisteredModel] = self._store.list_models(
            project=project, include_deleted=include_deleted
        )
        return models

    def model(self, name: str) -> RegisteredModel:
        model: RegisteredModel = self._store.get_model(name)
        return model

    def model_version(
        self, ref: str, *, at: str | float | datetime.datetime | None = None
    ) -> ModelVersion:
        """`name@alias`, `name@3`, `name@latest` or `name`; with `at` (ISO 8601 such as
        `"2026-11-01T00:00:00Z"`, Unix seconds, or a datetime; UTC unless it says
        otherwise), the version `ref` named at that time: an alias from its history."""
        when = None if at is None else v.instant(at, "at")
        version: ModelVersion = self._store.get_model_version(ref, at=when)
        return version

    def rollback(self, ref: str) -> ModelVersion:
        """Moves alias `name@alias` back to the version it pointed at before its last move,
        as a compare-and-set against where it points now. A protected alias opens a
        promotion request instead (`ApprovalRequired`, whose `request_id` names it)."""
        name, sep, alias = ref.partition("@")
        if not sep or not alias or alias.isdigit() or alias == "latest":
            raise InvalidArgument(f"rollback takes NAME@ALIAS, got {ref!r}")
        moves = self._store.alias_history(name, alias)
        if not moves or moves[-1].from_version is None:
            raise InvalidArgument(
                f"{ref} has no earlier version to go back to"
                + (" (its first move set it)" if moves else " (it never moved)")
            )
        last = moves[-1]
        assert last.from_version is not None
        moved: ModelVersion = self._store.set_alias(
            name, alias, last.from_version, expected_version=last.to_version
        )
        return moved

    def model_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        """A model's versions, newest first (deleted ones too with `include_deleted`)."""
        versions: list[ModelVersion] = self._store.list_model_versions(
            name, include_deleted=include_deleted
        )
        return versions

    def set_alias(
        self, name: str, alias: str, version: int, *, expected_version: int | _Unset | None = UNSET
    ) -> ModelVersion:
        """Points `alias` at `version`; with `expected_version`, only if it still points there."""
        moved: ModelVersion = self._store.set_alias(
            name, alias, version, expected_version=expected_version
        )
        return moved

    def set_version_tags(self, ref: str, tags: Mapping[str, str]) -> ModelVersion:
        """Sets string tags on model version `ref` (`name@3`, `name@alias`); other tags stay."""
        tagged: ModelVersion = self._store.update_model_version(ref, tags=tags)
        return tagged

    def delete_model(self, name: str) -> None:
        """Soft-deletes a model with its versions (a project admin); restorable."""
        self._store.delete_model(name)

    def restore_model(self, name: str) -> RegisteredModel:
        model: RegisteredModel = self._store.restore_model(name)
        return model

    def delete_model_version(self, ref: str, *, remove_aliases: bool = False) -> None:
        """Soft-deletes version `name@N` (a project admin). Refused (`Conflict`) while an
        alias points at it (unless `remove_aliases`) or an open promotion request names it."""
        self._store.delete_model_version(ref, remove_aliases=remove_aliases)

    def restore_model_version(self, ref: str) -> ModelVersion:
        """Restores deleted version `name@N` (its aliases are not: set them again)."""
        version: ModelVersion = self._store.restore_model_version(ref)
        return version

    def delete_version_tag(self, ref: str, key: str) -> ModelVersion:
        """Removes tag `key` of model version `ref` (a missing tag is no error)."""
        untagged: ModelVersion = self._store.delete_model_version_tag(ref, key)
        return untagged

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> RegisteredModel:
        """Sets string tags on model `name`; other tags stay."""
        tagged: RegisteredModel = self._store.update_model(name, tags=tags)
        return tagged

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        """Removes tag `key` of model `name` (a missing tag is no error)."""
        untagged: RegisteredModel = self._store.delete_model_tag(name, key)
        return untagged

    def set_description(self, ref: str, description: str) -> RegisteredModel | ModelVersion:
        """Describes model `name`, or one version of it (`name@3`, `name@alias`)."""
        if "@" in ref:
            version: ModelVersion = self._store.update_model_version(ref, description=description)
            return version
        model: RegisteredModel = self._store.update_model(ref, description=description)
        return model

    def delete_alias(self, name: str, alias: str) -> None:
        self._store.delete_alias(name, alias)

    # -- lineage and history -------------------------------------------------

    def lineage(self, node: str, *, direction: str = "both", depth: int = 3) -> LineageGraph:
        """The lineage graph around a node: a `LineageGraph` (`start`, `nodes`, `edges`,
        `truncated`).

        `node` is `model:NAME/3` (or `NAME@3`, `NAME@alias`), `run:ID`, `dataset:NAME/2`
        (`dataset:NAME` for every version), `artifact:PROJECT/NAME/1` or `code:COMMIT`;
        `direction` is `up` (what it came from), `down` (what came from it) or `both`.
        """
        if ":" not in node and "@" in node:
            node = "model:" + node
        return self._store.lineage(node, direction=direction, depth=depth)

    def evaluations(self, name: str) -> EvaluationHistory:
        """A model's evaluation history: for each version × dataset version × metric, the
        latest value logged by a run that used the version (`use_model`), with that run.
        `.evaluations` holds one `Evaluation` per cell."""
        return self._store.evaluations(name)

    def dataset_versions(self, project: str, name: str) -> list[DatasetVersion]:
        """The versions of a dataset, newest first."""
        versions: list[DatasetVersion] = self._store.list_datasets(project, name=name)
        return versions

    def diff_datasets(self, project: str, name: str, a: int | str, b: int | str) -> dict[str, Any]:
        """How two versions of a dataset differ: fingerprint, rows and schema."""
        diff: dict[str, Any] = self._store.diff_datasets(project, name, a, b)
        return diff

    def dataset_models(
        self, project: str, name: str, *, version: int | str | None = None
    ) -> list[dict[str, Any]]:
        """The model versions trained (role `train`) on each version of a dataset."""
        models: list[dict[str, Any]] = self._store.dataset_models(project, name, version=version)
        return models

    def environment(self, run_id: str) -> dict[str, Any] | None:
        """Where a run ran, as `registrum.init` recorded it: Python, OS, host, CPUs, memory,
        GPUs, installed packages, command line; None where it recorded none."""
        environment: dict[str, Any] | None = self._store.get_environment(run_id)
        return environment

    def code_version(self, run_id: str) -> dict[str, Any] | None:
        """A run's git commit, branch, remote, dirty flag and uncommitted-diff blob."""
        code: dict[str, Any] | None = self._store.get_code_version(run_id)
        return code

    def compare_code(self, run_a: str, run_b: str) -> dict[str, Any]:
        """Two runs' code versions side by side, with a diff of their uncommitted diffs."""
        compared: dict[str, Any] = self._store.compare_code(run_a, run_b)
        return compared

    def code_diff(self, run_id: str) -> str | None:
        """The uncommitted diff a run was started with, or None."""
        code = self.code_version(run_id)
        if not code or not code.get("diff_sha256"):
            return None
        data = b"".join(self._store.read_blob(code["diff_sha256"]))
        return data.decode("utf-8", errors="replace")

    # -- audit ----------------------------------------------------------------

    def audit(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
        exclude_actions: Sequence[str] = (),
    ) -> list[AuditEvent]:
        """Audit events, newest first: who did what to which entity, when, before and after
        (`exclude_actions`: leave these out, such as `registrum.entities.AUDIT_NOISE`)."""
        events = self._store.list_audit(
            exclude_actions=exclude_actions,
            project=project,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            since=since,
            until=until,
            limit=limit,
        )
        return events

    def verify_audit(self, anchors: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Checks the audit chain, and that it still extends each anchor recorded beside the
        audit key and each of `anchors` (from `audit_anchor`, kept elsewhere):
        `{"ok", "events", "problems", "anchors", "anchor"}`; a problem from an anchor names it
        in `anchor`. Needs a server admin."""
        result: dict[str, Any] = (
            self._store.verify_audit(list(anchors))
            if anchors is not None
            else self._store.verify_audit()
        )
        return result

    def audit_anchor(self) -> dict[str, Any]:
        """The audit chain's head signed with the store's audit key, `{"event", "hash",
        "time", "key", "signature"}`: keep it off-site and pass it to `verify_audit` later.
        Needs a server admin."""
        anchor: dict[str, Any] = self._store.audit_anchor()
        return anchor

    # -- webhooks -------------------------------------------------------------

    def webhooks(self, *, project: str | None = None, model: str | None = None) -> list[Webhook]:
        """Webhooks, oldest first: of a project (its model hooks too), of a model, or all.
        Secrets are never shown again after `add_webhook`."""
        return self._store.list_webhooks(project=project, model=model)

    def add_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        project: str | None = None,
        model: str | None = None,
        secret: str | None = None,
    ) -> Webhook:
        """Subscribes `url` to `events` (`run.finished`, `model_version.created`,
        `alias.moved`, `approval.requested`, `approval.decided`) of one project or one model.

        Payloads are signed with HMAC-SHA256 under `secret` (generated when not given); the
        result's `secret` is the only time it is shown.
        """
        return self._store.create_webhook(url, events, project=project, model=model, secret=secret)

    def remove_webhook(self, webhook_id: str) -> None:
        """Removes a webhook and its delivery log."""
        self._store.delete_webhook(webhook_id)

    def webhook_deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int | None = 100
    ) -> list[Delivery]:
        """A webhook's deliveries, newest event first: status (pending, delivered, failed),
        attempts, the last HTTP status or error, and when."""
        return self._store.list_deliveries(webhook_id, status=status, limit=limit)

    # -- promotion with approval ------------------------------------------------

    def set_policy(
        self,
        name: str,
        *,
        protected: Sequence[str] = (),
        approver_role: str = "reviewer",
        approvals_needed: int = 1,
        allow_self_approval: bool = False,
        gates: Sequence[dict[str, Any]] = (),
    ) -> Policy:
        """Sets a model's policy (needs project admin): the aliases it protects, who approves
        moves, how many approvals they need, and gates, e.g.
        `{"type": "evaluation", "fingerprint": F, "metric": "acc", "direction": "higher"}`
        or `{"type": "tags", "tags": ["validated"]}`."""
        return self._store.set_policy(
            name,
            protected=list(protected),
            approver_role=approver_role,
            approvals_needed=approvals_needed,
            allow_self_approval=allow_self_approval,
            gates=list(gates),
        )

    def policy(self, name: str) -> Policy:
        """A model's policy (the default, nothing protected, if none was set)."""
        return self._store.get_policy(name)

    def request_promotion(
        self, name: str, alias: str, version: int, *, comment: str | None = None
    ) -> PromotionRequest:
        """Opens a request to point protected alias `alias` at `version`; the answer shows
        which gates pass now."""
        return self._store.request_promotion(name, alias, version, comment=comment)

    def requests(
        self, name: str, *, state: str | None = None, alias: str | None = None
    ) -> list[PromotionRequest]:
        """A model's promotion requests, newest first."""
        return self._store.list_requests(name, state=state, alias=alias)

    def request(self, request_id: int) -> PromotionRequest:
        """One promotion request, with its votes and gates."""
        return self._store.get_request(request_id)

    def approve(self, request_id: int, *, comment: str | None = None) -> PromotionRequest:
        """Approves a request; the last approval needed moves the alias if every gate passes."""
        return self._store.approve_request(request_id, comment=comment)

    def reject(self, request_id: int, *, comment: str | None = None) -> PromotionRequest:
        return self._store.reject_request(request_id, comment=comment)

    def cancel_request(self, request_id: int, *, comment: str | None = None) -> PromotionRequest:
        """Withdraws a request (its requester, or a project admin)."""
        return self._store.cancel_request(request_id, comment=comment)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of a model's aliases (or of one), oldest first."""
        return self._store.alias_history(name, alias)

    def download(self, ref: str, out: str | Path) -> Path:
        """Downloads a model version's files into `out`, verified, with progress on a terminal."""
        version = self.model_version(ref)
        return self._fetch(version.artifact, Path(out), label=f"downloading {ref}")

    # -- artifacts ------------------------------------------------------------

    def artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact:
        artifact: Artifact = self._store.get_artifact(project, name, version)
        return artifact

    def artifacts(
        self,
        project: str,
        *,
        name: str | None = None,
        run_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        include_deleted: bool = False,
    ) -> list[Artifact]:
        """Artifact versions of a project, newest first: of one name, one run, one type
        (deleted ones too with `include_deleted`)."""
        found: list[Artifact] = self._store.list_artifacts(
            project,
            name=name,
            run_id=run_id,
            limit=None if type else limit,
            include_deleted=include_deleted,
        )
        if type is not None:
            found = [a for a in found if a.type == type][:limit]
        return found

    def delete_artifact(self, project: str, name: str, version: int) -> None:
        """Soft-deletes one version of an artifact (an editor), restorable until collected.
        Refused (`Conflict`) while a model version, dataset version or logged model stands
        on it."""
        self._store.delete_artifact(project, name, version)

    def restore_artifact(self, project: str, name: str, version: int) -> Artifact:
        artifact: Artifact = self._store.restore_artifact(project, name, version)
        return artifact

    def download_artifact(
        self, project: str, name: str, out: str | Path, *, version: int | str = "latest"
    ) -> Path:
        artifact = self.artifact(project, name, version)
        return self._fetch(artifact, Path(out), label=f"downloading {name}")

    def _fetch(self, artifact: Artifact, out: Path, *, label: str) -> Path:
        manifest: list[dict[str, Any]] = [x.to_dict() for x in artifact.files]
        return f.download(self._store, manifest, out, label=label)

    # -- access control ---------------------------------------------------------

    def whoami(self) -> User:
        """The user the token signs in as (embedded: the local user, who may do everything)."""
        user: User = self._store.whoami()
        return user

    def users(self) -> list[User]:
        """Every user (a server admin only)."""
        users: list[User] = self._store.list_users()
        return users

    def add_user(self, name: str, *, server_admin: bool = False, service: bool = False) -> User:
        """A new user (a server admin only); give them a token with `create_token(user=...)`.
        `service`: a service account, for machines (CI jobs, deployments): it never signs
        in through the identity provider, and only server admins make its tokens."""
        user: User = self._store.create_user(name, server_admin=server_admin, service=service)
        return user

    def disable_user(self, name: str) -> User:
        """Disables a user: their tokens stop working (a server admin only)."""
        user: User = self._store.disable_user(name)
        return user

    def create_token(
        self,
        *,
        name: str = "default",
        user: str | None = None,
        expires_at: float | None = None,
        project: str | None = None,
        role: str | None = None,
    ) -> ApiToken:
        """A new API token for `user` (default: yourself); `.token` is the secret, shown only
        in this answer. With `project` and `role`, a scoped token: it may do at most `role`
        on `project`, whatever its user may do, and nothing elsewhere."""
        token: ApiToken = self._store.create_token(
            name=name, user=user, expires_at=expires_at, project=project, role=role
        )
        return token

    def tokens(self, *, user: str | None = None) -> list[ApiToken]:
        """Your tokens, or `user`'s (a server admin), without their secrets."""
        tokens: list[ApiToken] = self._store.list_tokens(user=user)
        return tokens

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revokes a token by id (see `tokens()`): it stops working at once."""
        token: ApiToken = self._store.revoke_token(token_id)
        return token

    def members(self, project: str) -> list[Membership]:
        """A project's members and their roles."""
        members: list[Membership] = self._store.list_members(project)
        return members

    def add_member(self, project: str, user: str, role: str) -> Membership:
        """Gives `user` a role (viewer, editor, reviewer, admin) on `project`, or changes it
        (a project admin)."""
        member: Membership = self._store.add_member(project, user, role)
        return member

    def remove_member(self, project: str, user: str) -> None:
        """Takes `user`'s role on `project` away (a project admin)."""
        self._store.remove_member(project, user)
