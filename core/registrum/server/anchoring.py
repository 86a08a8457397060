"""Signs the audit chain's head periodically: a thread beside the server, never in a request.

Each round records a signed anchor outside the database when the head has moved
(`Store.seal_audit_head`), so a later rewrite of the events below it is detected even if
nobody asked for an anchor by hand. A failed round is logged and retried the next round.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("registrum.server.anchoring")


class Anchoring:
    """Seals `store`'s audit chain head every `interval` seconds, and once more at stop."""

    def __init__(self, store: Any, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="registrum-audit-anchoring", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._seal()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._seal()

    def _seal(self) -> None:
        try:
            self.store.seal_audit_head()
        except Exception as exc:  # a failed round must not end the thread; the next retries
            log.warning("could not sign the audit chain's head: %s", exc)


def start_anchoring(store: Any, interval: float) -> Anchoring | None:
    """The anchoring thread for `store`, started; None when `interval` is 0 (off)."""
    if interval <= 0:
        return None
    anchoring = Anchoring(store, interval)
    anchoring.start()
    return anchoring
