"""Marks runs `crashed` whose process went silent: a periodic job beside the server.

A training process that dies (SIGKILL, out of memory, a lost machine) never sends its
finish, so its run would stay `running` for good. Its writer sends a heartbeat every 30 s
while it lives; a run without one, and without a metric point, for the heartbeat timeout
is marked crashed (`Store.crash_silent_runs`). Each server process runs the job: the store
decides in one conditional statement, so several replicas crash a run once between them.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from registrum.store import Store

log = logging.getLogger("registrum.server")

CHECK_EVERY_MAX = 60.0  # seconds between checks, at most


def check_heartbeat_timeout(timeout: float) -> None:
    """Raises ValueError for a heartbeat timeout that cannot work."""
    if not timeout > 0:
        raise ValueError(f"the heartbeat timeout must be above 0 seconds, got {timeout}")


def start_liveness(store: Store, timeout: float) -> asyncio.Task[None]:
    """Starts checking for silent runs every quarter of `timeout` (at most every minute);
    stop it with `stop_liveness`."""
    return asyncio.create_task(_check(store, timeout, min(timeout / 4, CHECK_EVERY_MAX)))


async def stop_liveness(task: asyncio.Task[None]) -> None:
    """Stops the job and waits until it has."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _check(store: Store, timeout: float, every: float) -> None:
    while True:
        try:
            crashed = await run_in_threadpool(store.crash_silent_runs, timeout)
        except Exception:  # a failed check is retried at the next; it must not end the loop
            log.exception("marking silent runs crashed failed")
        else:
            if crashed:
                log.info(
                    "marked %d run(s) crashed after %.0f s without a heartbeat: %s",
                    len(crashed),
                    timeout,
                    ", ".join(crashed),
                )
        await asyncio.sleep(every)
