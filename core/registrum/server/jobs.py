"""The periodic jobs each server process runs beside its requests, never inside one.

* sweeping partial uploads that died (a server killed mid-upload leaves its partial file
  behind; on a full volume it holds the space until it goes);
* marking runs `crashed` whose process went silent (no heartbeat and no metric point for the
  heartbeat timeout; `Store.crash_silent_runs`);
* finishing the check of direct uploads to an S3 bucket that the server which took them did
  not finish (it died): read back, published or rejected (`Store.verify_pending_uploads`);
* collecting garbage (`Store.collect_garbage`) every `--gc-interval`, when asked for;
* signing the audit chain's head when it moved (`Store.seal_audit_head`), so a later rewrite
  of the events below it is detected even if nobody asked for an anchor by hand; once more
  at stop.

Each is leader-only (`Job.leader_only`, the default): with replicas on one PostgreSQL
database only the process holding the leader lock runs it (`registrum.server.leader`), so a
round is done once across the cluster, not once per replica. Each also stays idempotent or
decided by the store in one conditional statement, so the second in which a deposed leader
has not yet noticed its loss cannot do a piece of work twice. A job that is about this
process alone (its own caches, its own files) sets `leader_only=False`. A failed round is
logged and retried at the next; it never ends the job.

A new periodic job (garbage collection, blob verification, ...) is one more `Job` in `jobs`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from registrum.entities import GcReport
from registrum.server.settings import Settings
from registrum.store import Store

log = logging.getLogger("registrum.server")

SWEEP_EVERY_MAX = 300.0  # seconds between sweeps of partial uploads, at most
CHECK_EVERY_MAX = 60.0  # seconds between checks for silent runs, at most
VERIFY_EVERY = 60.0  # seconds between looks for direct uploads left unchecked
VERIFY_AFTER = 300.0  # an upload's check left this long is taken over


@dataclass
class Job:
    """`work` called in a worker thread every `every` seconds (the first call at once);
    `report` logs what a round did."""

    name: str
    every: float
    work: Callable[[], Any]
    report: Callable[[Any], None] = lambda _: None
    at_stop: bool = False  # one more round when the server stops
    leader_only: bool = True  # run only by the cluster's leader (see the module docstring)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    leads: Callable[[], bool] = field(default=lambda: True, repr=False)
    # The round in flight: its thread runs on when the job is cancelled, so `stop_jobs`
    # waits for it (the store must not close under it).
    running: asyncio.Future[Any] | None = field(default=None, repr=False)

    def due(self) -> bool:
        """Whether this process runs the job's rounds now."""
        return not self.leader_only or self.leads()

    async def _loop(self) -> None:
        while True:
            if self.due():
                await self._round()
                await asyncio.sleep(self.every)
            else:  # a replica that takes the lead starts the job within a second
                await asyncio.sleep(min(self.every, 1.0))

    async def _round(self) -> None:
        self.running = asyncio.ensure_future(run_in_threadpool(self.work))
        try:
            result = await asyncio.shield(self.running)
        except Exception:  # a failed round is retried at the next; it must not end the job
            log.exception("%s failed", self.name)
        else:
            self.report(result)


def _crashed(timeout: float) -> Callable[[list[str]], None]:
    def report(crashed: list[str]) -> None:
        if crashed:
            log.info(
                "marked %d run(s) crashed after %.0f s without a heartbeat: %s",
                len(crashed),
                timeout,
                ", ".join(crashed),
            )

    return report


def _swept(removed: int) -> None:
    if removed:
        log.info("removed %d partial upload(s) left by a writer that died", removed)


def _verified(settled: int) -> None:
    if settled:
        log.info("checked %d direct upload(s) whose check was left unfinished", settled)


def _collected(report: GcReport) -> None:
    log.info(
        "garbage collection: removed %d run(s), %d artifact(s), %d model version(s), "
        "%d model(s), %d project(s), %d blob(s) (%d bytes) in %.1f s",
        report.runs,
        report.artifacts,
        report.model_versions,
        report.models,
        report.projects,
        report.blobs,
        report.bytes,
        report.seconds,
    )


def jobs(store: Store, settings: Settings) -> list[Job]:
    """The jobs `settings` asks for, over `store`."""
    max_age, timeout = settings.partial_upload_max_age, settings.heartbeat_timeout
    found = [
        Job(
            "sweeping partial uploads",
            min(max_age / 4, SWEEP_EVERY_MAX),
            lambda: store.sweep_partial_uploads(max_age),
            _swept,
        ),
        Job(
            "marking silent runs crashed",
            min(timeout / 4, CHECK_EVERY_MAX),
            lambda: store.crash_silent_runs(timeout),
            _crashed(timeout),
        ),
        # Direct uploads to a bucket whose check the server that took them did not finish
        # (it died): their content is read back and published, or rejected (blob_direct.py).
        Job(
            "checking direct uploads",
            VERIFY_EVERY,
            lambda: store.verify_pending_uploads(VERIFY_AFTER),
            _verified,
        ),
    ]
    if settings.gc_interval > 0:
        grace = settings.gc_older_than
        found.append(
            Job(
                "collecting garbage",
                settings.gc_interval,
                lambda: store.collect_garbage(grace),
                _collected,
            )
        )
    if settings.audit_anchor_interval > 0:
        found.append(
            Job(
                "signing the audit chain's head",
                settings.audit_anchor_interval,
                store.seal_audit_head,
                at_stop=True,
            )
        )
    return found


def start_jobs(
    store: Store, settings: Settings, *, leads: Callable[[], bool] = lambda: True
) -> list[Job]:
    """Starts every job; stop them with `stop_jobs`. `leads` says whether this process
    leads now (`Leadership.held`): leader-only jobs skip their rounds while it does not."""
    started = jobs(store, settings)
    for job in started:
        job.leads = leads
        job.task = asyncio.create_task(job._loop())
    return started


async def stop_jobs(started: list[Job]) -> None:
    """Stops the jobs, waits until they have (a round in flight finishes), then runs the
    rounds due at stop."""
    for job in started:
        if job.task is not None:
            job.task.cancel()
    await asyncio.gather(*(j.task for j in started if j.task is not None), return_exceptions=True)
    await asyncio.gather(*(j.running for j in started if j.running), return_exceptions=True)
    for job in started:
        if job.at_stop and job.due():
            await job._round()
