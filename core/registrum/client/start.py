"""`registrum.init`: starts or resumes a run, with its spool, writer and captures."""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import socket
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registrum import validation as v
from registrum.client.names import run_name
from registrum.client.run import Run, _activate
from registrum.client.settings import ClientSettings
from registrum.client.spool import Spool
from registrum.client.transport import open_transport
from registrum.client.writer import Writer
from registrum.errors import InvalidArgument

log = logging.getLogger("registrum")
# (home, store) pairs whose leftover spools this process is delivering now
_leftovers: set[tuple[Path, str | None]] = set()
_leftovers_lock = threading.Lock()


def init(
    project: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    job_type: str | None = None,
    parent: Run | str | None = None,
    store: str | None = None,
    *,
    id: str | None = None,
    mode: str | None = None,
    capture_environment: bool = True,
    capture_code: bool = True,
    system_metrics: float | None = None,
) -> Run:
    """Starts (or, with `id`, resumes) a run and returns it.

    Args:
        project: the project the run belongs to (`REGISTRUM_PROJECT`, else "default").
        name: a display name.
        config: hyperparameters; nested dicts are flattened as `optimizer.lr`.
        tags: string tags.
        job_type: e.g. "train", "evaluation".
        parent: the parent run (a Run or its id), e.g. a sweep.
        store: where the run goes: `http(s)://host:port`, a database URL, or
            None for `REGISTRUM_URL`, else the embedded store under `REGISTRUM_HOME`.
        id: a run id to use or resume (also from another process or rank).
        mode: `online`, `offline` or `disabled` (default `REGISTRUM_MODE`, else online).
        capture_environment: record Python, OS, CPUs, memory, GPUs, installed
            packages, command line, host and user.
        capture_code: record the git commit, branch, remote, dirty flag and the
            uncommitted diff of the entry script's repository.
        system_metrics: sample CPU %, memory and GPU use every this many seconds
            as `system/...` metrics (off by default).
    """
    settings = ClientSettings.from_env(store=store, mode=mode)
    project = project or os.environ.get("REGISTRUM_PROJECT") or "default"
    project = v.name(project, "project name")
    if name is not None:
        v.name(name, "run name", slash=True)
    run_id = v.run_id(id) if id is not None else uuid.uuid4().hex
    if name is None and id is None:  # a new run: a readable name (a given id may resume one)
        name = run_name(run_id)
    parent_id = parent.id if isinstance(parent, Run) else parent
    if parent_id is not None:
        v.run_id(parent_id)
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument(f"config must be a dict, got {type(config).__name__}")
    tag_map = v.string_map(tags, "tags")
    writer = None
    if settings.mode != "disabled":
        writer = _start_writer(settings, run_id, project)
        writer.submit(
            "create_run",
            project=project,
            name=name,
            job_type=job_type,
            parent_id=parent_id,
            user=_user(),
            host=socket.gethostname(),
            config=dict(config or {}),
            tags=tag_map,
        )
        writer.start()
    run = Run(
        run_id=run_id,
        project=project,
        name=name,
        settings=settings,
        writer=writer,
        config=config or {},
    )
    if writer is None:
        return _activate(run)
    if capture_environment or capture_code:
        # Off the caller's thread: listing the installed packages takes a good fraction of a
        # second. `finish` waits for it, so the records precede the run's end.
        run._capturing = threading.Thread(
            target=_capture,
            args=(writer,),
            kwargs={"environment": capture_environment, "code": capture_code},
            name=f"registrum-capture-{run_id[:8]}",
            daemon=True,
        )
        run._capturing.start()
    if system_metrics:
        run._start_sampler(system_metrics)
    if settings.mode == "online" and not writer.flush(settings.init_timeout) and not writer.outage:
        log.warning(
            "registrum: the store did not answer within %.0f s; run %s goes on and is "
            "delivered when the store is back",
            settings.init_timeout,
            run_id,
        )
    if settings.mode == "online":
        _deliver_leftovers(settings)
    run._raise_if_strict()
    return _activate(run)


def _deliver_leftovers(settings: ClientSettings) -> None:
    """Delivers, in a daemon thread, what earlier processes left in the spool for the same
    store (runs whose process died, or whose `finish` gave up), so nothing waits for someone
    to remember `registrum sync`. A spool whose process is alive is skipped (its lock tells);
    spools bound elsewhere wait for `registrum sync`, since this process's token is for this
    store only."""
    key = (settings.home, settings.store)
    with _leftovers_lock:
        if key in _leftovers:
            return  # one pass at a time per spool folder and store (a sweep starts runs fast)
        _leftovers.add(key)

    def deliver() -> None:
        from registrum.client.sync import deliver_leftovers

        try:
            deliver_leftovers(settings)
        finally:
            with _leftovers_lock:
                _leftovers.discard(key)

    threading.Thread(target=deliver, name="registrum-leftovers", daemon=True).start()


def _start_writer(settings: ClientSettings, run_id: str, project: str) -> Writer:
    """The run's spool (taken by this process) and the writer that delivers it."""
    spool = Spool(settings.spool_root, run_id)
    # Locked before its meta is written: `registrum sync`, and the leftovers delivery of
    # another thread's `init`, take only spools with a meta, and then only unlocked ones.
    if not spool.lock():
        raise InvalidArgument(
            f"run {run_id} is already being written by another process on this machine"
        )
    spool.create(
        {"store": settings.store, "run_id": run_id, "project": project, "pid": os.getpid()}
    )
    return Writer(
        run_id,
        spool,
        lambda: open_transport(settings.store, home=settings.home, token=settings.token),
        offline=settings.mode == "offline",
        strict=settings.strict,
        store=settings.store,
        sync_command=sync_command(settings),
        heartbeat_interval=settings.heartbeat_interval,
    )


def sync_command(settings: ClientSettings) -> str:
    """The command that delivers this process's spools, as a user types it."""
    default = Path.home() / ".registrum"
    if settings.home.resolve() == default.resolve():
        return "registrum sync"
    return f"REGISTRUM_HOME={shlex.quote(str(settings.home))} registrum sync"


def _capture(writer: Writer, *, environment: bool, code: bool) -> None:
    """Where and from what code the run runs; a failure here is a warning, never an error."""
    if environment:
        try:
            from registrum.capture.environment import capture_environment

            writer.submit("set_environment", environment=capture_environment())
        except Exception as exc:
            log.warning("registrum: could not capture the environment: %s", exc)
    if code:
        try:
            from registrum.capture.git import capture_git

            script = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else None
            state = capture_git(script if script and script.is_dir() else None)
            if state is not None:
                writer.submit(
                    "set_code_version",
                    commit=state.commit,
                    branch=state.branch,
                    remote=state.remote_url,
                    dirty=state.dirty,
                    diff=state.diff or None,
                    extra={"root": state.root, "diff_truncated": state.diff_truncated},
                )
        except Exception as exc:
            log.warning("registrum: could not capture the code version: %s", exc)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
