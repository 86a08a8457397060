"""`registrum sync`: delivers the spools of runs whose process is gone, or that ran offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registrum.client.spool import Spool, spools
from registrum.client.transport import open_transport
from registrum.client.writer import deliver, retryable


@dataclass
class SyncResult:
    run_id: str
    delivered: int
    left: int
    error: str | None = None


def sync_spools(
    root: Path, *, home: Path, store: str | None = None, token: str | None = None
) -> list[SyncResult]:
    """Replays every spool under `root` whose writer is gone, oldest event first.

    Spools still held by a live process are skipped. `store` overrides where
    each run was going. A spool that is fully delivered is removed. Spools that
    stop short are tried again while another pass delivers more (a child run
    waits for its parent's spool).
    """
    results: dict[Path, SyncResult] = {}
    pending = spools(root)
    while pending:
        progress, again = False, []
        for spool in pending:
            if not spool.lock():
                continue  # its process is alive and delivers it itself
            try:
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
    return list(results.values())


def _sync_one(spool: Spool, *, home: Path, store: str | None, token: str | None) -> SyncResult:
    meta = spool.meta()
    run_id = str(meta.get("run_id", spool.run_id))
    delivered = 0
    try:
        transport = open_transport(store or meta.get("store"), home=home, token=token)
    except Exception as exc:
        return SyncResult(run_id, 0, spool.count(), f"{type(exc).__name__}: {exc}")
    try:
        for path, event in spool.pending():
            try:
                deliver(transport, event)
            except Exception as exc:
                if retryable(exc):
                    return SyncResult(
                        run_id, delivered, spool.count(), f"{type(exc).__name__}: {exc}"
                    )
                spool.reject(path, f"{type(exc).__name__}: {exc}")
                continue
            spool.done(path)
            delivered += 1
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()
    left = spool.count()
    if left == 0:
        spool.remove()
    return SyncResult(run_id, delivered, left)
