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
    each run was going. A spool that is fully delivered is removed.
    """
    results = []
    for spool in spools(root):
        if not spool.lock():
            continue  # its process is alive and delivers it itself
        try:
            results.append(_sync_one(spool, home=home, store=store, token=token))
        finally:
            spool.unlock()
    return results


def _sync_one(spool: Spool, *, home: Path, store: str | None, token: str | None) -> SyncResult:
    meta = spool.meta()
    run_id = str(meta.get("run_id", spool.path.name))
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
