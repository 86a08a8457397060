"""Runs: creation and resume, the status lifecycle, tags, and loading full run records."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, delete, select, update

from registrum import validation as v
from registrum.entities import MetricSummary, Run
from registrum.errors import AlreadyExists, InvalidArgument, InvalidTransition, RunNotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.tracking.params import ParamsMixin, flatten, param_value

TERMINAL = ("finished", "failed", "crashed", "killed")
# Allowed status moves. A terminal run may resume (running again); a run that
# crashed or was killed may still be closed properly by a late sync.
TRANSITIONS: dict[str, set[str]] = {
    "running": {"running", *TERMINAL},
    "finished": {"finished", "running"},
    "failed": {"failed", "running"},
    "crashed": {"crashed", "running", "finished", "failed", "killed"},
    "killed": {"killed", "running", "finished", "failed", "crashed"},
}


# Built once (see _base.py): the four reads of `_load_runs`, for a list of run ids.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_RUNS = (
    select(t.runs, t.projects.c.name.label("project"))
    .join(t.projects, t.projects.c.id == t.runs.c.project_id)
    .where(t.runs.c.id.in_(_IDS))
)
_RUNS_PARAMS = (
    select(t.params.c.run_id, t.keys.c.name, t.params.c.value_type, t.params.c.value_json)
    .join(t.keys, t.keys.c.id == t.params.c.key_id)
    .where(t.params.c.run_id.in_(_IDS))
)
_RUNS_TAGS = select(t.run_tags.c.run_id, t.run_tags.c.key, t.run_tags.c.value).where(
    t.run_tags.c.run_id.in_(_IDS)
)
_s, _scales = t.metric_summaries, t.metric_step_scales
_RUNS_METRICS = (
    select(_s, t.keys.c.name, _scales.c.scale)
    .join(t.keys, t.keys.c.id == _s.c.key_id)
    .outerjoin(_scales, (_scales.c.run_id == _s.c.run_id) & (_scales.c.key_id == _s.c.key_id))
    .where(_s.c.run_id.in_(_IDS))
)


class RunsMixin(ParamsMixin, StoreBase):
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
        """Creates a run, or resumes it when `run_id` names an existing run of this project.

        Run ids may be made by the client, so a run can exist before the store
        answers and every rank of a distributed job can share one.
        """
        project = v.name(project, "project name")
        run_id = v.run_id(run_id) if run_id is not None else uuid.uuid4().hex
        fields = {
            "name": None if name is None else v.name(name, "run name", slash=True),
            "job_type": None if job_type is None else v.name(job_type, "job_type"),
            "user": None if user is None else v.name(user, "user", slash=True),
            "host": None if host is None else v.name(host, "host", slash=True),
            "description": v.optional_text(description, "description"),
        }
        if parent_id is not None:
            v.run_id(parent_id)
        if start_time is not None:
            v.timestamp(start_time, "start_time")
        flat = flatten(config or {})
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            project_id = self._project_id(conn, project, create=True, need="editor")
            if parent_id is not None:
                self._run_row(conn, parent_id, need="viewer")
            existing = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
            stamp = now()
            if existing is None:
                conn.execute(
                    t.runs.insert().values(
                        id=run_id,
                        project_id=project_id,
                        status="running",
                        parent_id=parent_id,
                        start_time=start_time or stamp,
                        heartbeat_at=stamp,
                        created_at=stamp,
                        **fields,
                    )
                )
            else:
                if existing.project_id != project_id:
                    raise AlreadyExists(
                        f"run {run_id!r} already exists in another project; "
                        "a resumed run keeps its project",
                        run_id=run_id,
                    )
                changes = {k: val for k, val in fields.items() if val is not None}
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id == run_id)
                    .values(status="running", end_time=None, heartbeat_at=stamp, **changes)
                )
            self._write_params(conn, run_id, project_id, flat)
            self._write_tags(conn, t.run_tags, "run_id", run_id, tag_map)
            after = {**fields, "parent_id": parent_id, "params": flat, "tags": tag_map}
            self._audit(
                conn,
                "run.created" if existing is None else "run.resumed",
                "run",
                run_id,
                project=project,
                before=None if existing is None else {"status": existing.status},
                after={k: val for k, val in after.items() if val},
            )
            return self._load_runs(conn, [run_id])[0]

    def get_run(self, run_id: str) -> Run:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            runs = self._load_runs(conn, [run_id])
        if not runs:
            raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)
        return runs[0]

    def update_run(
        self, run_id: str, *, name: str | None = None, description: str | None = None
    ) -> Run:
        v.run_id(run_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = v.name(name, "run name", slash=True)
        if description is not None:
            values["description"] = v.optional_text(description, "description")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if values:
                conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**values))
                before = {k: getattr(row, k) for k in values}
                self._audit_run(conn, row, "run.updated", before=before, after=values)
            return self._load_runs(conn, [run_id])[0]

    def set_run_status(self, run_id: str, status: str, *, end_time: float | None = None) -> Run:
        """Moves a run along its lifecycle; terminal states record the end time."""
        v.run_id(run_id)
        v.status(status)
        if end_time is not None:
            v.timestamp(end_time, "end_time")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if status not in TRANSITIONS[row.status]:
                raise InvalidTransition(
                    f"run {run_id!r} is {row.status}; it cannot become {status}", run_id=run_id
                )
            stamp = now()
            ended = None if status == "running" else (end_time or row.end_time or stamp)
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, end_time=ended, heartbeat_at=stamp)
            )
            self._audit_run(
                conn,
                row,
                "run.status" if status == "running" else "run.finished",
                before={"status": row.status, "end_time": row.end_time},
                after={"status": status, "end_time": ended},
            )
            return self._load_runs(conn, [run_id])[0]

    def finish_run(
        self, run_id: str, status: str = "finished", *, end_time: float | None = None
    ) -> Run:
        v.terminal_status(status)
        return self.set_run_status(run_id, status, end_time=end_time)

    def heartbeat(self, run_id: str) -> None:
        v.run_id(run_id)
        with self._tx() as conn:
            self._run_row(conn, run_id, need="editor")
            result = conn.execute(
                update(t.runs).where(t.runs.c.id == run_id).values(heartbeat_at=now())
            )
            if result.rowcount == 0:
                raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)

    def crash_silent_runs(self, timeout: float, *, at: float | None = None) -> list[str]:
        """Marks `crashed` every running run without a heartbeat for `timeout` seconds, and
        returns their ids.

        One conditional UPDATE decides, so servers that run this at once on one database
        each crash a run at most once between them (the others no longer see it running).
        A metric point as recent as that counts as a heartbeat too, for clients that send
        none (MLflow's). Its end time is its last heartbeat. A late delivery may still
        finish it.
        """
        self._require_server_admin("marking silent runs crashed")
        v.number(timeout, "timeout")
        if not timeout > 0:
            raise InvalidArgument(f"the heartbeat timeout must be above 0 seconds, got {timeout}")
        stamp = now() if at is None else v.number(at, "at")
        r, m = t.runs.c, t.metric_summaries.c
        since = stamp - timeout
        logging = select(m.run_id).where(m.run_id == r.id, m.last_time >= since).exists()
        with self._tx() as conn:
            crashed = conn.execute(
                update(t.runs)
                .where(r.status == "running", r.heartbeat_at < since, ~logging)
                .values(status="crashed", end_time=r.heartbeat_at)
                .returning(r.id, r.project_id, r.heartbeat_at)
            ).all()
            for row in crashed:
                self._audit_run(
                    conn,
                    row,
                    "run.finished",
                    before={"status": "running", "end_time": None},
                    after={"status": "crashed", "end_time": row.heartbeat_at},
                )
        return [row.id for row in crashed]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        v.run_id(run_id)
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            before = self._tags_of(conn, run_id, list(tag_map))
            self._write_tags(conn, t.run_tags, "run_id", run_id, tag_map)
            if tag_map:
                self._audit_run(conn, row, "run.tags_set", before=before, after=tag_map)

    def delete_tag(self, run_id: str, key: str) -> None:
        v.run_id(run_id)
        v.key(key, "tag key")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            before = self._tags_of(conn, run_id, [key])
            conn.execute(
                delete(t.run_tags).where(t.run_tags.c.run_id == run_id, t.run_tags.c.key == key)
            )
            if before:
                self._audit_run(conn, row, "run.tag_deleted", before=before)

    def _tags_of(self, conn: Connection, run_id: str, keys: list[str]) -> dict[str, str]:
        rt = t.run_tags.c
        rows = conn.execute(
            select(rt.key, rt.value).where(rt.run_id == run_id, rt.key.in_(keys))
        ).all()
        return {k: val for k, val in rows}

    def project_keys(self, project: str) -> dict[str, list[str]]:
        """The param, metric and tag keys the project's runs have:
        `{"params": [...], "metrics": [...], "tags": [...]}`, each sorted."""
        from registrum.store.search.keys import project_keys

        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            return project_keys(conn, project_id)

    def run_counts(self, projects: Sequence[str]) -> dict[str, int]:
        """How many runs each of these projects holds; projects the signed-in user may not
        see, or that do not exist, are left out."""
        from registrum.store.search.keys import run_counts

        names = list(dict.fromkeys(projects))
        if not names:
            return {}
        with self._read() as conn:
            ids = self._visible_named(conn, names)
            counts = run_counts(conn, list(ids))
        return {name: counts.get(pid, 0) for pid, name in ids.items()}

    # -- helpers -------------------------------------------------------------

    def _load_runs(self, conn: Connection, ids: Sequence[str]) -> list[Run]:
        """Full run records, in the order of `ids`, in four queries."""
        if not ids:
            return []
        rows = conn.execute(_RUNS, {"ids": list(ids)}).all()
        params = self._runs_params(conn, ids)
        tags: dict[str, dict[str, str]] = {}
        for run_id, key, value in conn.execute(_RUNS_TAGS, {"ids": list(ids)}).all():
            tags.setdefault(run_id, {})[key] = value
        metrics = self._runs_metrics(conn, ids)
        by_id = {
            r.id: Run(
                id=r.id,
                project=r.project,
                name=r.name,
                status=r.status,
                job_type=r.job_type,
                parent_id=r.parent_id,
                user=r.user,
                host=r.host,
                start_time=r.start_time,
                end_time=r.end_time,
                heartbeat_at=r.heartbeat_at,
                description=r.description,
                params=dict(sorted(params.get(r.id, {}).items())),
                tags=dict(sorted(tags.get(r.id, {}).items())),
                metrics=dict(sorted(metrics.get(r.id, {}).items())),
                deleted_at=r.deleted_at,
            )
            for r in rows
        }
        return [by_id[i] for i in ids if i in by_id]

    def _runs_params(self, conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The params of runs `ids`, by run (runs without any are absent)."""
        params: dict[str, dict[str, Any]] = {}
        for run_id, name, value_type, value_json in conn.execute(
            _RUNS_PARAMS, {"ids": list(ids)}
        ).all():
            params.setdefault(run_id, {})[name] = param_value(value_type, value_json)
        return params

    def _runs_metrics(
        self, conn: Connection, ids: Sequence[str]
    ) -> dict[str, dict[str, MetricSummary]]:
        """The metric summaries of runs `ids`, by run and key (runs without any are absent)."""
        metrics: dict[str, dict[str, MetricSummary]] = {}
        for r in conn.execute(_RUNS_METRICS, {"ids": list(ids)}).all():
            metrics.setdefault(r.run_id, {})[r.name] = summary_from_row(r.name, r)
        return metrics


def summary_from_row(key: str, r: Any) -> MetricSummary:
    """A summary from its row; with the series' decimal step scale (`scale`, when the row
    has it), the last step is the decimal step."""
    scale = int(getattr(r, "scale", None) or 0)
    return MetricSummary(
        key=key,
        last=math.nan if r.last_value is None else r.last_value,
        last_step=int(r.last_step) / 10**scale if scale else int(r.last_step),
        step_scale=scale,
        last_time=r.last_time,
        min=r.min_value,
        max=r.max_value,
        count=int(r.points),
    )
