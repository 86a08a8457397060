"""Runs: creation and resume, status lifecycle, params with history, tags, environment, code."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from registrum.entities import MetricSummary, Run, decode_nonfinite, encode_float
from registrum.errors import AlreadyExists, InvalidArgument, InvalidTransition, RunNotFound
from registrum.store import schema as t
from registrum.store import validation as v
from registrum.store._base import StoreBase, dumps, loads, now

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


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys: {"optimizer": {"lr": 1e-3}} -> {"optimizer.lr": 1e-3}."""
    if not isinstance(config, Mapping):
        raise InvalidArgument(
            f"params must be a mapping of names to values, got {type(config).__name__}"
        )
    out: dict[str, Any] = {}
    for k, value in config.items():
        if not isinstance(k, str):
            raise InvalidArgument(f"param name {k!r} must be a string")
        full = f"{prefix}{k}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{full}."))
        else:
            out[v.key(full, "param name")] = value
    return out


def typed_param(value: Any) -> dict[str, Any]:
    """The stored columns for one param value.

    The strings "NaN", "Infinity" and "-Infinity" are the float values they
    name: that is how non-finite floats travel in JSON, so a param logged over
    HTTP and one logged in-process are stored alike.
    """
    value = decode_nonfinite(value)
    if value is None:
        return {"value_type": "null", "value_json": "null", "value_num": None, "value_str": None}
    if isinstance(value, bool):
        text = "true" if value else "false"
        return {
            "value_type": "bool",
            "value_json": text,
            "value_num": float(value),
            "value_str": text,
        }
    if isinstance(value, int):
        return {
            "value_type": "int",
            "value_json": str(value),
            "value_num": float(value),
            "value_str": str(value)[:250],
        }
    if isinstance(value, float):
        encoded = encode_float(value)
        return {
            "value_type": "float",
            "value_json": dumps(encoded),
            "value_num": value if not math.isnan(value) else None,
            "value_str": repr(value)[:250],
        }
    if isinstance(value, str):
        return {
            "value_type": "str",
            "value_json": dumps(value),
            "value_num": None,
            "value_str": value[:250],
        }
    try:
        text = dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        text = dumps(repr(value))
        return {
            "value_type": "str",
            "value_json": text,
            "value_num": None,
            "value_str": repr(value)[:250],
        }
    return {"value_type": "json", "value_json": text, "value_num": None, "value_str": text[:250]}


def param_value(value_type: str, value_json: str) -> Any:
    value = loads(value_json)
    return decode_nonfinite(value) if value_type == "float" else value


class RunsMixin(StoreBase):
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
        v.name(project, "project name")
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
            v.number(start_time, "start_time")
        flat = flatten(config or {})
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            project_id = self._project_id(conn, project, create=True)
            if parent_id is not None:
                self._run_row(conn, parent_id)
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
            self._write_tags(conn, run_id, tag_map)
            return self._load_runs(conn, [run_id])[0]

    def get_run(self, run_id: str) -> Run:
        v.run_id(run_id)
        with self._read() as conn:
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
            self._run_row(conn, run_id)
            if values:
                conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**values))
            return self._load_runs(conn, [run_id])[0]

    def set_run_status(self, run_id: str, status: str, *, end_time: float | None = None) -> Run:
        """Moves a run along its lifecycle; terminal states record the end time."""
        v.run_id(run_id)
        v.status(status)
        if end_time is not None:
            v.number(end_time, "end_time")
        with self._tx() as conn:
            row = self._run_row(conn, run_id)
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
            return self._load_runs(conn, [run_id])[0]

    def finish_run(
        self, run_id: str, status: str = "finished", *, end_time: float | None = None
    ) -> Run:
        if status == "running":
            raise InvalidArgument("finish_run needs a terminal status, not 'running'")
        return self.set_run_status(run_id, status, end_time=end_time)

    def heartbeat(self, run_id: str) -> None:
        v.run_id(run_id)
        with self._tx() as conn:
            result = conn.execute(
                update(t.runs).where(t.runs.c.id == run_id).values(heartbeat_at=now())
            )
            if result.rowcount == 0:
                raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Logs params (nested dicts flattened); the same value again is a no-op,
        a changed value is kept with its history. Returns the flattened params."""
        v.run_id(run_id)
        flat = flatten(params)
        with self._tx() as conn:
            row = self._run_row(conn, run_id)
            self._write_params(conn, run_id, row.project_id, flat)
        return flat

    def param_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every value a param took, oldest first: [{"value", "logged_at"}]."""
        v.run_id(run_id)
        with self._read() as conn:
            row = self._run_row(conn, run_id)
            ids = self._key_ids(conn, row.project_id, [key], create=False)
            if key not in ids:
                return []
            rows = conn.execute(
                select(t.param_history.c.value_json, t.param_history.c.logged_at)
                .where(t.param_history.c.run_id == run_id, t.param_history.c.key_id == ids[key])
                .order_by(t.param_history.c.id)
            )
            return [
                {"value": decode_nonfinite(loads(r.value_json)), "logged_at": r.logged_at}
                for r in rows
            ]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        v.run_id(run_id)
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            self._run_row(conn, run_id)
            self._write_tags(conn, run_id, tag_map)

    def delete_tag(self, run_id: str, key: str) -> None:
        v.run_id(run_id)
        v.key(key, "tag key")
        with self._tx() as conn:
            self._run_row(conn, run_id)
            conn.execute(
                delete(t.run_tags).where(t.run_tags.c.run_id == run_id, t.run_tags.c.key == key)
            )

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        """Stores what the run ran on (python, OS, CPUs, GPUs, packages, command line)."""
        v.run_id(run_id)
        if not isinstance(environment, Mapping):
            raise InvalidArgument("environment must be an object")
        data = _json_text(environment, "environment")
        with self._tx() as conn:
            self._run_row(conn, run_id)
            conn.execute(
                self._insert(t.run_environments)
                .values(run_id=run_id, data=data, updated_at=now())
                .on_conflict_do_update(
                    index_elements=["run_id"], set_={"data": data, "updated_at": now()}
                )
            )

    def get_environment(self, run_id: str) -> dict[str, Any] | None:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id)
            text = conn.execute(
                select(t.run_environments.c.data).where(t.run_environments.c.run_id == run_id)
            ).scalar()
        environment: dict[str, Any] | None = loads(text)
        return environment

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
    ) -> None:
        """Stores the git state of the run's code; the uncommitted diff is a blob."""
        v.run_id(run_id)
        if commit is not None and not (isinstance(commit, str) and 0 < len(commit) <= 64):
            raise InvalidArgument("commit must be a string of at most 64 characters")
        if branch is not None:
            v.name(branch, "branch", slash=True)
        v.optional_text(remote, "remote", max_len=1024)
        if dirty is not None and not isinstance(dirty, bool):
            raise InvalidArgument("dirty must be true or false")
        if diff_sha256 is not None:
            v.sha256(diff_sha256)
        if extra is not None and not isinstance(extra, Mapping):
            raise InvalidArgument("extra must be an object")
        values = {
            "commit": commit,
            "branch": branch,
            "remote": remote,
            "dirty": dirty,
            "diff_sha256": diff_sha256,
            "data": _json_text(dict(extra or {}), "extra"),
            "updated_at": now(),
        }
        with self._tx() as conn:
            self._run_row(conn, run_id)
            conn.execute(
                self._insert(t.code_versions)
                .values(run_id=run_id, **values)
                .on_conflict_do_update(index_elements=["run_id"], set_=values)
            )

    def get_code_version(self, run_id: str) -> dict[str, Any] | None:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id)
            row = conn.execute(
                select(t.code_versions).where(t.code_versions.c.run_id == run_id)
            ).first()
        if row is None:
            return None
        return {
            "commit": row.commit,
            "branch": row.branch,
            "remote": row.remote,
            "dirty": row.dirty,
            "diff_sha256": row.diff_sha256,
            "extra": loads(row.data),
        }

    # -- helpers -------------------------------------------------------------

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)
        return row

    def _write_params(
        self, conn: Connection, run_id: str, project_id: int, flat: dict[str, Any]
    ) -> None:
        if not flat:
            return
        ids = self._key_ids(conn, project_id, flat)
        current = {
            int(r.key_id): r.value_json
            for r in conn.execute(
                select(t.params.c.key_id, t.params.c.value_json).where(
                    t.params.c.run_id == run_id, t.params.c.key_id.in_(ids.values())
                )
            )
        }
        stamp = now()
        changed = []
        for key, value in flat.items():
            columns = typed_param(value)
            if current.get(ids[key]) == columns["value_json"]:
                continue
            changed.append({"run_id": run_id, "key_id": ids[key], "updated_at": stamp, **columns})
        if not changed:
            return
        stmt = self._insert(t.params)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key_id"],
                set_={
                    c: stmt.excluded[c]
                    for c in ("value_type", "value_json", "value_num", "value_str", "updated_at")
                },
            ),
            changed,
        )
        conn.execute(
            t.param_history.insert(),
            [
                {
                    "run_id": run_id,
                    "key_id": c["key_id"],
                    "value_json": c["value_json"],
                    "logged_at": stamp,
                }
                for c in changed
            ],
        )

    def _write_tags(self, conn: Connection, run_id: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        stmt = self._insert(t.run_tags)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
            ),
            [{"run_id": run_id, "key": k, "value": val} for k, val in tags.items()],
        )

    def _load_runs(self, conn: Connection, ids: Sequence[str]) -> list[Run]:
        """Full run records, in the order of `ids`, in four queries."""
        if not ids:
            return []
        rows = conn.execute(
            select(t.runs, t.projects.c.name.label("project"))
            .join(t.projects, t.projects.c.id == t.runs.c.project_id)
            .where(t.runs.c.id.in_(ids))
        ).all()
        params: dict[str, dict[str, Any]] = {}
        for r in conn.execute(
            select(t.params.c.run_id, t.keys.c.name, t.params.c.value_type, t.params.c.value_json)
            .join(t.keys, t.keys.c.id == t.params.c.key_id)
            .where(t.params.c.run_id.in_(ids))
        ):
            params.setdefault(r.run_id, {})[r.name] = param_value(r.value_type, r.value_json)
        tags: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(t.run_tags).where(t.run_tags.c.run_id.in_(ids))):
            tags.setdefault(r.run_id, {})[r.key] = r.value
        metrics: dict[str, dict[str, MetricSummary]] = {}
        s = t.metric_summaries
        for r in conn.execute(
            select(s, t.keys.c.name)
            .join(t.keys, t.keys.c.id == s.c.key_id)
            .where(s.c.run_id.in_(ids))
        ):
            metrics.setdefault(r.run_id, {})[r.name] = summary_from_row(r.name, r)
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
            )
            for r in rows
        }
        return [by_id[i] for i in ids if i in by_id]


def summary_from_row(key: str, r: Any) -> MetricSummary:
    return MetricSummary(
        key=key,
        last=math.nan if r.last_value is None else r.last_value,
        last_step=int(r.last_step),
        last_time=r.last_time,
        min=r.min_value,
        max=r.max_value,
        count=int(r.points),
    )


def _json_text(value: Any, what: str) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be JSON-serialisable: {exc}") from None
