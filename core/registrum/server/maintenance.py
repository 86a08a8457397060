"""Upkeep every server process runs on its own: sweeping partial uploads that died.

A server killed mid-upload leaves its partial file behind; on a full volume that file
holds the space until it goes. Each process sweeps at start and then periodically (not
leader-only: a sweep is idempotent, and the age threshold spares live uploads, also those
of other processes sharing the blob folder).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from registrum.server.settings import Settings
from registrum.store import Store

log = logging.getLogger("registrum.server")

SWEEP_EVERY_MAX = 300.0  # seconds between sweeps, at most


def start_sweeper(store: Store, settings: Settings) -> asyncio.Task[None]:
    """Starts sweeping partial uploads older than `settings.partial_upload_max_age`, now and
    every quarter of that age; cancel the task to stop."""
    max_age = settings.partial_upload_max_age
    return asyncio.create_task(_sweep(store, max_age, min(max_age / 4, SWEEP_EVERY_MAX)))


async def stop_sweeper(task: asyncio.Task[None]) -> None:
    """Stops a sweeper and waits until it has."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _sweep(store: Store, max_age: float, every: float) -> None:
    while True:
        try:
            removed = await run_in_threadpool(store.sweep_partial_uploads, max_age)
        except Exception:  # a failed sweep is retried at the next; it must not end the loop
            log.exception("sweeping partial uploads failed")
        else:
            if removed:
                log.info("removed %d partial upload(s) left by a writer that died", removed)
        await asyncio.sleep(every)
