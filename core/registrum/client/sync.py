"""`registrum sync`: delivers the spools of runs whose process is gone, or that ran offline.

A run whose process is gone without finishing is marked `crashed` once its spool is
delivered. `registrum.init` runs the same delivery in the background for its own store
(`deliver_leftovers`), so a later run delivers what an earlier one left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registrum.client.spool import Spool, spools
from registrum.client.transport import Transport, open_transport
from registrum.client.writer import deliver, describe_error, retryable

if TYPE_CHECKING:
    from registrum.client.settings import ClientSettings

log = logging.getLogger("registrum")


@dataclass
class SyncResult:
    """What one pass over one spool did.

    Attributes:
        delivered: events the store took.
        left: events still waiting (the store was unreachable: `error` says why).
        rejected: events the store refused, kept under the spool's `rejected/`; `reason` is
            the first one's (`registrum sync --retry-rejected` sends them again).
        crashed: the run was still `running` with its process gone, and is now `crashed`.
    """

    run_id: str
    delivered: int
    left: int
    error: str | None = None
    rejected: int = 0
    reason: str | None = None
    crashed: bool = False


def sync_spools(
    root: Path,
    *,
    home: Path,
    store: str | None = None,
    token: str | None = None,
    retry_rejected: bool = False,
    only: Callable[[dict[str, Any]], bool] | None = None,
) -> list[SyncResult]:
    """Replays every spool under `root` whose writer is gone, oldest event first.

    Spools still held by a live process are skipped. `store` overrides where
    each run was going. A spool that is fully delivered is removed. Spools that
    stop short are tried again while another pass delivers more (a child run
    waits for its parent's spool). `retry_rejected` first puts the events the
    store refused back in line; `only` picks spools by their meta.
    """
    results: dict[Path, SyncResult] = {}
    pending = _listed(root)
    first_pass = True
    while pending:
        progress, again = False, []
        for spool in pending:
            if not (spool.path / "meta.json").exists():
                continue  # delivered and removed by another process meanwhile
            if not spool.lock():
                continue  # its process is alive and delivers it itself
            try:
                if not (spool.path / "meta.json").exists():
                    # Taking the lock re-made the folder of a spool just removed.
                    shutil.rmtree(spool.path, ignore_errors=True)
                    with contextlib.suppress(OSError):  # the run's folder, unless still used
                        spool.path.parent.rmdir()
                    continue
                if only is not None and not only(spool.meta()):
                    continue
                if retry_rejected and first_pass:
                    _restore_rejected(spool)
                result = _sync_one(spool, home=home, store=store, token=token)
            finally:
                spool.unlock()
            earlier = results.get(spool.path)
            if earlier is not None:
                result.delivered += earlier.delivered
            results[spool.path] = result
            progress = progress or result.delivered > (earlier.delivered if earlier else 0)
            if result.left:
                again.append(spool)
        pending = again if progress else []
        first_pass = False
    return list(results.values())


def deliver_leftovers(settings: ClientSettings) -> None:
    """`registrum sync` for the spools bound to `settings.store`, quietly, for a background
    thread of `registrum.init`. Never raises: the caller's run does not depend on it."""
    try:
        results = sync_spools(
            settings.spool_root,
            home=settings.home,
            token=settings.token,
            only=lambda meta: meta.get("store") == settings.store,
        )
    except Exception as exc:  # a spool another process changes under us; the next try sees
        log.info("registrum: delivering earlier runs' spools stopped: %s", exc)
        return
    for r in results:
        if r.delivered or r.crashed:
            log.info(
                "registrum: delivered %d event(s) of run %s left by an earlier process%s",
                r.delivered,
                r.run_id,
                "; it is marked crashed" if r.crashed else "",
            )


def _listed(root: Path) -> list[Spool]:
    """`spools(root)`, retried while another process removes a spool under the listing."""
    for _ in range(5):
        try:
            return spools(root)
        except FileNotFoundError:
            continue
    return []


def _restore_rejected(spool: Spool) -> None:
    """Puts the events the store refused back among the pending ones, in their order."""
    rejected = spool.path / "rejected"
    if not rejected.is_dir():
        return
    for path in sorted(rejected.glob("*.json")):
        os.replace(path, spool.events / path.name)
    shutil.rmtree(rejected, ignore_errors=True)


def _rejected(spool: Spool) -> tuple[int, str | None]:
    """How many events the store refused, and the first one's reason."""
    rejected = spool.path / "rejected"
    if not rejected.is_dir():
        return 0, None
    events = sorted(rejected.glob("*.json"))
    reason = None
    if events:
        with contextlib.suppress(OSError):
            reason = (rejected / f"{events[0].stem}.reason.txt").read_text().strip()
    return len(events), reason


def _finish_kept(spool: Spool) -> bool:
    """Whether the run's finish is in the spool (refused, so still there)."""
    for path in (spool.path / "rejected").glob("*.json"):
        with contextlib.suppress(OSError):
            if b'"finish_run"' in path.read_bytes():
                return True
    return False


def _written_elsewhere(spool: Spool) -> bool:
    """Whether a live process still writes the run (another rank, or the run resumed)."""
    for other in spool.path.parent.iterdir():
        if other == spool.path or not (other / "meta.json").exists():
            continue
        sibling = Spool(spool.path.parent.parent, spool.run_id, other.name)
        if not sibling.lock():
            return True
        sibling.unlock()
    return False


def _last_seen(spool: Spool) -> float | None:
    """When the run's process last wrote its spool: the end time of a crashed run."""
    times = []
    for path in (spool.path, spool.events, spool.path / "lock"):
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return max(times, default=None)


def _mark_crashed(transport: Transport, spool: Spool, run_id: str) -> bool:
    """Marks the run `crashed` if the store still has it running with its process gone and
    its finish not in the spool; False if it does not (or cannot tell)."""
    try:
        if _finish_kept(spool) or _written_elsewhere(spool):
            return False
        if transport.get_run(run_id).status != "running":
            return False
        transport.finish_run(run_id, "crashed", end_time=_last_seen(spool))
    except Exception:  # gone, refused or unreachable: left as it is, tried again next sync
        return False
    return True


def _sync_one(spool: Spool, *, home: Path, store: str | None, token: str | None) -> SyncResult:
    meta = spool.meta()
    run_id = str(meta.get("run_id", spool.run_id))
    delivered = 0
    try:
        transport = open_transport(store or meta.get("store"), home=home, token=token)
    except Exception as exc:
        return SyncResult(run_id, 0, spool.count(), describe_error(exc))
    try:
        for path, event in spool.pending():
            try:
                deliver(transport, event)
            except Exception as exc:
                if retryable(exc):
                    rejected, reason = _rejected(spool)
                    return SyncResult(
                        run_id,
                        delivered,
                        spool.count(),
                        describe_error(exc),
                        rejected=rejected,
                        reason=reason,
                    )
                spool.reject(path, describe_error(exc))
                continue
            spool.done(path)
            delivered += 1
        left = spool.count()
        crashed = left == 0 and _mark_crashed(transport, spool, run_id)
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()
    rejected, reason = _rejected(spool)
    if left == 0:
        spool.remove()
    return SyncResult(run_id, delivered, left, rejected=rejected, reason=reason, crashed=crashed)
