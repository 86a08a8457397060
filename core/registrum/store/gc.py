"""Garbage collection: what was soft-deleted longer ago than a grace period goes for good,
then the blobs that nothing references any more.

In order, each step in short transactions of at most `BATCH` rows, so a collection can be
interrupted anywhere and the next one goes on where it stopped:

0. every project's retention policy is applied (tracking/retention.py): what it no longer
   keeps is deleted now, to be collected once the grace period has passed;
1. model versions deleted before the cutoff, and every version of models deleted before it
   (their tags, aliases, policies, requests and alias history go with the model);
2. artifacts deleted before it that nothing live stands on (a dataset version, any model
   version row, a logged model, the input of a live run);
3. runs deleted before it whose outputs nothing stands on any more (with every row the run
   owns: params, metrics, tags, files, logged models, its artifacts); a child run of a
   collected run stays, without its parent;
4. projects deleted before it that no longer hold runs, models or artifacts;
5. blobs that no row references and that nobody uploaded or referenced since the cutoff
   (and never within `BLOB_MIN_AGE`): the database row is deleted and the bytes removed in
   one transaction. A writer that comes to reference a blob marks it used in its own
   transaction (`BlobsMixin._claim_blobs`), so the two meet on the blob's row: whichever
   comes first, no reference to missing bytes can result;
6. bytes in the blob store that the database does not know (a crash between writing a blob
   and recording it) and finished uploads that no blob came to use, older than a day.

A blob that a live model version, an alias's version, or anything a live registered
version's lineage stands on references is never collected: each of those rows stays, so
the blob stays referenced. A dry run does steps 1 to 5 in one transaction that is rolled
back, so it reports exactly what a collection would remove, and removes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, delete, exists, func, or_, select, update

from registrum import validation as v
from registrum.entities import GcReport
from registrum.errors import StoreError
from registrum.store import schema as t
from registrum.store._base import StoreBase
from registrum.store.tracking.retention import RetentionMixin

DEFAULT_GRACE = 7 * 86400.0  # seconds a deleted thing stays restorable by default
BLOB_MIN_AGE = 60.0  # an unreferenced blob younger than this stays, whatever the grace
ORPHAN_AGE = 86400.0  # unrecorded bytes and unpublished uploads: a day, then collected
BATCH = 500


class _Rollback(Exception):
    """Ends a dry run's transaction without committing it."""


class GcMixin(RetentionMixin, StoreBase):
    def collect_garbage(
        self,
        older_than: float | str = DEFAULT_GRACE,
        *,
        dry_run: bool = False,
        blob_min_age: float = BLOB_MIN_AGE,
        orphan_age: float = ORPHAN_AGE,
    ) -> GcReport:
        """Removes for good what was deleted more than `older_than` seconds ago, then the
        blobs nothing references (see the module docstring); a server admin. `older_than`
        is seconds or a duration such as "7d". With `dry_run`, reports what would go and
        removes nothing. `blob_min_age` and `orphan_age` (seconds) are the floors of step 5
        and the age of step 6."""
        self._require_server_admin("collecting garbage")
        grace = v.duration(older_than, "older_than")
        began = time.time()
        cutoff = began - grace
        blob_cutoff = min(cutoff, began - max(blob_min_age, 0.0))
        tally = _Tally()
        if dry_run:
            try:
                with self._tx() as conn:
                    for step in self._steps(cutoff, blob_cutoff, tally, remove_bytes=False):
                        step(conn)
                    raise _Rollback
            except _Rollback:
                pass
        else:
            for step in self._steps(cutoff, blob_cutoff, tally, remove_bytes=True):
                while True:  # each step in short transactions until it has no more to do
                    with self._tx() as conn:
                        more = step(conn)
                    if not more:
                        break
        if tally.failure is None:
            swept = self._sweep_unrecorded(began - orphan_age, dry_run=dry_run)
            unpublished = self.blobs.sweep_unpublished(orphan_age, dry_run=dry_run)
            tally.count("", "blobs", swept[0] + unpublished[0])
            tally.count("", "bytes", swept[1] + unpublished[1])
        report = tally.report(dry_run, grace, time.time() - began)
        if not dry_run:
            with self._tx() as conn:
                self._audit(conn, "gc.collected", "store", "gc", after=report.to_dict())
        if tally.failure is not None:  # what went is recorded; the next collection goes on
            raise tally.failure
        return report

    # -- the steps ------------------------------------------------------------------------

    def _steps(
        self, cutoff: float, blob_cutoff: float, tally: _Tally, *, remove_bytes: bool
    ) -> list[Any]:
        """The steps in order; each takes a connection, does one batch (a dry run: all of
        it) and answers whether it may have more."""
        once = not remove_bytes  # a dry run's steps run once, each to the end

        def batched(work: Any) -> Any:
            def step(conn: Connection) -> bool:
                if once:
                    while work(conn):
                        pass
                    return False
                return bool(work(conn))

            return step

        def retain(conn: Connection) -> bool:
            for project, counts in self._apply_retention(conn, None, time.time()).items():
                tally.count(project, "expired", sum(counts.values()))
            return False

        return [
            retain,
            batched(lambda conn: self._purge_versions(conn, cutoff, tally)),
            batched(lambda conn: self._purge_models(conn, cutoff, tally)),
            batched(lambda conn: self._purge_artifacts(conn, cutoff, tally)),
            batched(lambda conn: self._purge_runs(conn, cutoff, tally)),
            batched(lambda conn: self._purge_projects(conn, cutoff, tally)),
            batched(lambda conn: self._collect_blobs(conn, blob_cutoff, tally, remove_bytes)),
        ]

    def _purge_versions(self, conn: Connection, cutoff: float, tally: _Tally) -> bool:
        mv, m = t.model_versions.c, t.registered_models.c
        rows = conn.execute(
            select(mv.id, mv.artifact_id, m.project_id)
            .join(t.registered_models, m.id == mv.model_id)
            .where(mv.deleted_at < cutoff, m.deleted_at.is_(None))
            .order_by(mv.id)
            .limit(BATCH)
        ).all()
        if rows:
            _drop_versions(conn, [r.id for r in rows])
            self._drop_model_artifacts(conn, [r.artifact_id for r in rows])
            for r in rows:
                tally.count(tally.project(conn, r.project_id), "model_versions")
        return len(rows) == BATCH

    def _purge_models(self, conn: Connection, cutoff: float, tally: _Tally) -> bool:
        m = t.registered_models.c
        rows = conn.execute(
            select(m.id, m.project_id).where(m.deleted_at < cutoff).order_by(m.id).limit(BATCH)
        ).all()
        for model in rows:
            mv = t.model_versions.c
            versions = conn.execute(
                select(mv.id, mv.artifact_id).where(mv.model_id == model.id)
            ).all()
            project = tally.project(conn, model.project_id)
            tally.count(project, "model_versions", len(versions))
            tally.count(project, "models")
            requests = select(t.promotion_requests.c.id).where(
                t.promotion_requests.c.model_id == model.id
            )
            conn.execute(
                delete(t.promotion_votes).where(t.promotion_votes.c.request_id.in_(requests))
            )
            for table in (
                t.aliases,
                t.model_tags,
                t.model_policies,
                t.promotion_requests,
                t.alias_history,
            ):
                conn.execute(delete(table).where(table.c.model_id == model.id))
            _drop_versions(conn, [r.id for r in versions])
            self._drop_model_artifacts(conn, [r.artifact_id for r in versions])
            conn.execute(delete(t.registered_models).where(m.id == model.id))
        return len(rows) == BATCH

    def _drop_model_artifacts(self, conn: Connection, artifact_ids: Sequence[int]) -> None:
        """The artifacts a collected version registered from files (no run owns them), once
        nothing else stands on them."""
        a = t.artifacts.c
        loose = conn.execute(
            select(a.id).where(
                a.id.in_(list(artifact_ids)), a.run_id.is_(None), ~_artifact_used(a.id)
            )
        ).scalars()
        _drop_artifacts(conn, list(loose))

    def _purge_artifacts(self, conn: Connection, cutoff: float, tally: _Tally) -> bool:
        a = t.artifacts.c
        run_live = exists().where(t.runs.c.id == a.run_id, t.runs.c.deleted_at.is_(None))
        candidates = (
            select(a.id, a.project_id, _artifact_used(a.id).label("used"))
            .where(a.deleted_at < cutoff, or_(a.run_id.is_(None), run_live))
            .order_by(a.id)
        )
        return self._purge_batch(conn, candidates, tally, "artifacts", _drop_artifacts)

    def _purge_runs(self, conn: Connection, cutoff: float, tally: _Tally) -> bool:
        r = t.runs.c
        a = t.artifacts.c
        outputs_used = exists().where(a.run_id == r.id, _artifact_used(a.id))
        registered = exists().where(t.model_versions.c.run_id == r.id)
        candidates = (
            select(r.id, r.project_id, (outputs_used | registered).label("used"))
            .where(r.deleted_at < cutoff)
            .order_by(r.id)
        )
        return self._purge_batch(conn, candidates, tally, "runs", _drop_runs)

    def _purge_batch(
        self, conn: Connection, candidates: Any, tally: _Tally, what: str, drop: Any
    ) -> bool:
        """Drops the next batch of `candidates` (rows of id, project_id, used) that nothing
        uses; those in use are counted as kept and skipped (by id, so the next batch moves
        on)."""
        after = tally.resume.get(what)
        query = (
            candidates
            if after is None
            else candidates.where(candidates.selected_columns[0] > after)
        )
        rows = conn.execute(query.limit(BATCH)).all()
        if not rows:
            return False
        tally.resume[what] = rows[-1][0]
        free = [row for row in rows if not row.used]
        tally.count("", "kept_in_use", len(rows) - len(free))
        drop(conn, [row[0] for row in free])
        for row in free:
            tally.count(tally.project(conn, row.project_id), what)
        return len(rows) == BATCH

    def _purge_projects(self, conn: Connection, cutoff: float, tally: _Tally) -> bool:
        p = t.projects.c
        holds = or_(
            exists().where(t.runs.c.project_id == p.id),
            exists().where(t.registered_models.c.project_id == p.id),
            exists().where(t.artifacts.c.project_id == p.id),
        )
        rows = conn.execute(
            select(p.id, p.name).where(p.deleted_at < cutoff, ~holds).order_by(p.id).limit(BATCH)
        ).all()
        for project in rows:
            d = t.dataset_versions.c
            datasets = select(d.id).where(d.project_id == project.id)
            i = t.run_inputs.c
            conn.execute(delete(t.run_inputs).where(i.kind == "dataset", i.target_id.in_(datasets)))
            hooks = select(t.webhooks.c.id).where(t.webhooks.c.project == project.name)
            conn.execute(
                delete(t.webhook_deliveries).where(t.webhook_deliveries.c.webhook_id.in_(hooks))
            )
            conn.execute(delete(t.webhooks).where(t.webhooks.c.project == project.name))
            lm = t.logged_models.c
            models = select(lm.id).where(lm.project_id == project.id)
            conn.execute(
                delete(t.logged_model_files).where(t.logged_model_files.c.model_id.in_(models))
            )
            conn.execute(delete(t.logged_models).where(lm.project_id == project.id))
            for table in (t.dataset_versions, t.project_tags, t.memberships, t.keys):
                conn.execute(delete(table).where(table.c.project_id == project.id))
            conn.execute(delete(t.projects).where(p.id == project.id))
            tally.count(project.name, "projects")
        return len(rows) == BATCH

    def _collect_blobs(
        self, conn: Connection, cutoff: float, tally: _Tally, remove_bytes: bool
    ) -> bool:
        """Deletes the next batch of unreferenced blobs unused since `cutoff`: rows first (a
        writer that marks one used meanwhile waits on the row, then finds it gone and checks
        the bytes), then the bytes, in the same transaction."""
        b = t.blobs.c
        after = tally.resume.get("blobs", "")
        rows = conn.execute(
            select(b.sha256, b.size)
            .where(
                b.sha256 > after,
                func.coalesce(b.used_at, b.created_at) < cutoff,
                ~_blob_referenced(b.sha256),
            )
            .order_by(b.sha256)
            .limit(BATCH)
        ).all()
        if not rows:
            return False
        tally.resume["blobs"] = rows[-1].sha256
        # Locked and checked again: a writer marking one used waits here, then finds no row.
        doomed = conn.execute(
            select(b.sha256, b.size)
            .where(
                b.sha256.in_([r.sha256 for r in rows]),
                func.coalesce(b.used_at, b.created_at) < cutoff,
                ~_blob_referenced(b.sha256),
            )
            .order_by(b.sha256)
            .with_for_update()
        ).all()
        gone, failure = [], None
        for row in doomed:
            if remove_bytes:
                try:
                    self.blobs.delete(row.sha256)
                except StoreError as exc:  # the rows of the bytes removed go; the rest stay
                    failure = exc
                    if not self.blobs.exists(row.sha256):
                        gone.append(row)
                    break
            gone.append(row)
        if gone:
            digests = [g.sha256 for g in gone]
            conn.execute(delete(t.blob_grants).where(t.blob_grants.c.sha256.in_(digests)))
            conn.execute(delete(t.blobs).where(b.sha256.in_(digests)))
            tally.count("", "blobs", len(gone))
            tally.count("", "bytes", sum(int(g.size) for g in gone))
        if failure is not None:
            tally.failure = failure
            return False
        return len(rows) == BATCH

    def _sweep_unrecorded(self, cutoff: float, *, dry_run: bool) -> tuple[int, int]:
        """Removes stored bytes the database has no row for, written before `cutoff`."""
        removed = size = 0
        for batch in _chunks(self.blobs.stored(), BATCH):
            old = {sha: (n, at) for sha, n, at in batch if at < cutoff}
            if not old:
                continue
            with self._read() as conn:
                known = set(
                    conn.execute(
                        select(t.blobs.c.sha256).where(t.blobs.c.sha256.in_(list(old)))
                    ).scalars()
                )
            for sha256, (n, _) in old.items():
                if sha256 not in known:
                    if not n:  # a pointer lists no bytes: the size it names
                        with contextlib.suppress(StoreError):
                            n = self.blobs.size(sha256)
                    if not dry_run:
                        self.blobs.delete(sha256)
                    removed, size = removed + 1, size + n
        return removed, size


class _Tally:
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.per_project: dict[str, dict[str, int]] = {}
        self.resume: dict[str, Any] = {}  # per step, the last id it looked at
        self.names: dict[int, str] = {}
        self.failure: Exception | None = None

    def project(self, conn: Connection, project_id: int) -> str:
        if project_id not in self.names:
            self.names[project_id] = str(
                conn.execute(
                    select(t.projects.c.name).where(t.projects.c.id == project_id)
                ).scalar_one()
            )
        return self.names[project_id]

    def count(self, project: str, what: str, n: int = 1) -> None:
        if not n:
            return
        self.totals[what] = self.totals.get(what, 0) + n
        if project:
            counts = self.per_project.setdefault(project, {})
            counts[what] = counts.get(what, 0) + n

    def report(self, dry_run: bool, grace: float, seconds: float) -> GcReport:
        return GcReport(
            dry_run=dry_run,
            older_than=grace,
            seconds=round(seconds, 3),
            per_project=self.per_project,
            **self.totals,
        )


# -- what stands on what ------------------------------------------------------------------


def _artifact_used(artifact_id: Any) -> Any:
    """SQL: something not collectable stands on the artifact: any model version row (a
    deleted one is collected first), a dataset version, a live logged model, or the input
    of a live run."""
    mv, d, lm, i, r = (
        t.model_versions.c,
        t.dataset_versions.c,
        t.logged_models.c,
        t.run_inputs.c,
        t.runs.c,
    )
    return or_(
        exists().where(mv.artifact_id == artifact_id),
        exists().where(d.artifact_id == artifact_id),
        exists().where(lm.artifact_id == artifact_id, lm.deleted_at.is_(None)),
        exists().where(
            i.kind == "artifact",
            i.target_id == artifact_id,
            exists().where(r.id == i.run_id, r.deleted_at.is_(None)),
        ),
    )


def _blob_referenced(sha256: Any) -> Any:
    """SQL: a row still references the blob (whether or not it is soft-deleted)."""
    return or_(
        exists().where(t.artifact_files.c.sha256 == sha256),
        exists().where(t.run_files.c.sha256 == sha256),
        exists().where(t.logged_model_files.c.sha256 == sha256),
        exists().where(t.code_versions.c.diff_sha256 == sha256),
    )


def _drop_versions(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    i = t.run_inputs.c
    conn.execute(delete(t.run_inputs).where(i.kind == "model_version", i.target_id.in_(list(ids))))
    conn.execute(delete(t.aliases).where(t.aliases.c.version_id.in_(list(ids))))
    conn.execute(
        delete(t.model_version_tags).where(t.model_version_tags.c.version_id.in_(list(ids)))
    )
    conn.execute(delete(t.model_versions).where(t.model_versions.c.id.in_(list(ids))))


def _drop_artifacts(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    i = t.run_inputs.c
    conn.execute(delete(t.run_inputs).where(i.kind == "artifact", i.target_id.in_(list(ids))))
    lm = t.logged_models.c
    conn.execute(
        update(t.logged_models).where(lm.artifact_id.in_(list(ids))).values(artifact_id=None)
    )
    conn.execute(delete(t.artifact_files).where(t.artifact_files.c.artifact_id.in_(list(ids))))
    conn.execute(delete(t.artifacts).where(t.artifacts.c.id.in_(list(ids))))


# The rows a run owns, by the column that names it.
_RUN_OWNED = (
    t.params,
    t.param_history,
    t.run_tags,
    t.metric_batches,
    t.metric_chunks,
    t.metric_summaries,
    t.metric_step_scales,
    t.run_environments,
    t.code_versions,
    t.run_inputs,
    t.run_media,  # before the files it names
    t.run_files,
    t.run_model_outputs,
)


def _drop_runs(conn: Connection, ids: Sequence[str]) -> None:
    if not ids:
        return
    runs = list(ids)
    a = t.artifacts.c
    _drop_artifacts(conn, list(conn.execute(select(a.id).where(a.run_id.in_(runs))).scalars()))
    lm = t.logged_models.c
    models = select(lm.id).where(lm.run_id.in_(runs))
    conn.execute(delete(t.run_model_outputs).where(t.run_model_outputs.c.model_id.in_(models)))
    conn.execute(delete(t.logged_model_files).where(t.logged_model_files.c.model_id.in_(models)))
    conn.execute(delete(t.logged_models).where(lm.run_id.in_(runs)))
    for table in _RUN_OWNED:
        conn.execute(delete(table).where(table.c.run_id.in_(runs)))
    r = t.runs.c
    conn.execute(update(t.runs).where(r.parent_id.in_(runs)).values(parent_id=None))
    conn.execute(delete(t.runs).where(r.id.in_(runs)))


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
