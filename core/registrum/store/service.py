"""The service layer: one object that holds every rule, used in-process and by the server."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from registrum import validation as v
from registrum.entities import Page, Project, Run
from registrum.errors import (
    AlreadyExists,
    RegistrumError,
    SchemaMismatch,
    StoreError,
    StoreUnavailable,
)
from registrum.store import schema as t
from registrum.store._base import now, project_record
from registrum.store.blobs import BlobStore, LocalBlobStore
from registrum.store.db import default_home, make_engine, migrate, release
from registrum.store.gc import GcMixin
from registrum.store.governance.audit import AuditMixin
from registrum.store.governance.identity import IdentityMixin
from registrum.store.governance.lineage import LineageMixin
from registrum.store.governance.outbox import OutboxMixin
from registrum.store.registry.evaluations import EvaluationsMixin
from registrum.store.registry.versions import RegistryMixin
from registrum.store.tracking.blob_direct import DirectBlobsMixin
from registrum.store.tracking.deletion import DeletionMixin
from registrum.store.tracking.fixed_params import FixedParamsMixin
from registrum.store.tracking.lifecycle import LifecycleMixin
from registrum.store.tracking.logged_models import LoggedModelsMixin
from registrum.store.tracking.media import MediaMixin
from registrum.store.tracking.metrics import MetricsMixin
from registrum.store.tracking.project_tags import ProjectTagsMixin
from registrum.store.tracking.run_datasets import RunDatasetsMixin


class Store(
    RegistryMixin,
    EvaluationsMixin,
    LineageMixin,
    MetricsMixin,
    LoggedModelsMixin,
    MediaMixin,
    AuditMixin,
    OutboxMixin,
    IdentityMixin,
    LifecycleMixin,
    DeletionMixin,
    GcMixin,
    FixedParamsMixin,
    ProjectTagsMixin,
    RunDatasetsMixin,
    DirectBlobsMixin,
):
    """Runs, metrics, artifacts, datasets and the model registry.

    One database and one blob store; every rule of the product lives here.
    """

    def create_project(self, name: str, *, description: str | None = None) -> Project:
        name = v.name(name, "project name")
        v.optional_text(description, "description")
        self._require_may_create(name)
        with self._tx() as conn:
            found = conn.execute(select(t.projects.c.id).where(t.projects.c.name == name)).scalar()
            if found is not None:
                raise AlreadyExists(f"project {name!r} already exists", project=name)
            project_id = conn.execute(
                t.projects.insert()
                .values(name=name, description=description, created_at=now())
                .returning(t.projects.c.id)
            ).scalar_one()
            self._audit(
                conn,
                "project.created",
                "project",
                name,
                project=name,
                after={"description": description},
            )
            self._make_creator_admin(conn, int(project_id), name)
        return self.get_project(name)

    def get_project(self, name: str, *, include_deleted: bool = False) -> Project:
        """The project `name`; a deleted one only with `include_deleted` (else
        `ProjectNotFound`, saying how to restore it)."""
        with self._read() as conn:
            project_id = self._project_id(conn, name, need="viewer", deleted_ok=include_deleted)
            r = conn.execute(select(t.projects).where(t.projects.c.id == project_id)).one()
        return project_record(r)

    def list_projects(
        self, *, limit: int | None = None, offset: int = 0, include_deleted: bool = False
    ) -> list[Project]:
        """Projects by name (deleted ones only with `include_deleted`); `limit`/`offset`
        select one page."""
        with self._read() as conn:
            query = select(t.projects).order_by(t.projects.c.name)
            if not include_deleted:
                query = query.where(t.projects.c.deleted_at.is_(None))
            visible = self._visible_projects(conn)
            if visible is not None:
                query = query.where(t.projects.c.id.in_(visible))
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [project_record(r) for r in rows]

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
        """Runs of a project matching the filter language, ordered, one page at a time;
        soft-deleted runs are left out unless `deleted` is "only" or "include";
        `top_level`: only runs without a parent."""
        from registrum.store.search.query import search_run_ids

        with self._read() as conn:
            project_id = self._project_id(
                conn, project, need="viewer", deleted_ok=deleted != "exclude"
            )
            ids, next_cursor = search_run_ids(
                conn,
                project_id,
                filter=filter,
                order_by=order_by,
                limit=limit,
                cursor=cursor,
                deleted=deleted,
                top_level=top_level,
            )
            runs: list[Run] = self._load_runs(conn, ids)
        return Page(items=runs, next_cursor=next_cursor)

    def close(self) -> None:
        release(self.engine)


def open_store(
    url: str | None = None, *, blobs: str | Path | BlobStore | None = None, upgrade: bool = True
) -> Store:
    """Opens (and creates or upgrades) a store.

    Args:
        url: a `sqlite:///path.db` or `postgresql+psycopg://...` URL; default
            the SQLite file under `REGISTRUM_HOME` (`~/.registrum`).
        blobs: a folder for the local blob backend, `s3://BUCKET/PREFIX` for an
            S3-compatible bucket (see `registrum.store.blobs_s3`), or a `BlobStore`;
            default `blobs/` beside the SQLite file, or under `REGISTRUM_HOME`.
        upgrade: whether a database at an older schema revision is upgraded (the embedded
            store's one user does it by opening); the server passes False and refuses such a
            database until `registrum db upgrade` ran (SchemaMismatch says so).
    """
    home = default_home()
    if url is None:
        home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{home / 'registrum.db'}"
    engine = make_engine(url)
    if blobs is None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        root = (
            Path(database).expanduser().parent / "blobs"
            if database and database != ":memory:"
            else home / "blobs"
        )
        blobs = LocalBlobStore(root)
    elif isinstance(blobs, str) and blobs.startswith("s3://"):
        try:
            blobs = _s3_blobs(blobs)
        except RegistrumError:
            engine.dispose()
            raise
    elif not isinstance(blobs, BlobStore):
        blobs = LocalBlobStore(Path(blobs).expanduser())
    try:
        migrate(engine, upgrade=upgrade)
    except SchemaMismatch:
        engine.dispose()
        raise
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        raise StoreUnavailable(f"cannot open the store at {where}: {exc.orig}") from None
    store = Store(engine, blobs)
    # Partial uploads of a process that died (SIGKILL, power loss) go at the next open.
    with contextlib.suppress(OSError, StoreError):
        store.sweep_partial_uploads()
    return store


def _s3_blobs(url: str) -> BlobStore:
    """The bucket an `s3://` URL names, checked now: a missing bucket or refused
    credentials stop the opening with what to fix, not a failed upload later."""
    from registrum.store.blobs_s3 import S3BlobStore

    try:
        s3 = S3BlobStore.from_url(url)
    except ImportError as exc:  # pragma: no cover - boto3 comes with the server extra
        raise StoreUnavailable(
            f"an s3:// blob store needs boto3 ({exc.name} is missing): "
            'pip install "registrum[server]"'
        ) from None
    s3.check()
    return s3
