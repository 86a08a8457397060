"""The background writer: buffers points, spools every event, delivers in order, retries.

The training thread only appends to a buffer under a lock. One thread per run
turns the buffer into batches, writes each event to the spool before sending
it, sends events in order and removes them once the store acknowledges them.
While the store is unreachable it backs off and keeps everything on disk.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registrum.client.spool import Spool
from registrum.entities import decode_floats, decode_nonfinite, encode_floats
from registrum.errors import RunNotFound, StoreError, StoreUnavailable

log = logging.getLogger("registrum")

BATCH_POINTS = 10_000
# Points reach the spool and the store this often (or sooner, with anything else sent, a
# flush, or a full batch): each batch costs the store a transaction, whatever its size.
FLUSH_INTERVAL = 1.0
OPS = (
    "create_run",
    "log_metrics",
    "log_params",
    "set_tags",
    "set_environment",
    "set_code_version",
    "log_dataset",
    "log_artifact",
    "register_model",
    "finish_run",
)


def retryable(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed later (the store or the network was down); a
    local file that is gone or unreadable will not come back by waiting."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return False
    return isinstance(exc, StoreError | ConnectionError | TimeoutError | OSError)


def deliver(transport: Any, event: dict[str, Any]) -> None:
    """Sends one spooled event to a transport."""
    op, args = event["op"], dict(event["args"])
    if op not in OPS:
        raise ValueError(f"unknown spooled operation {op!r}")
    if op == "log_metrics":
        args["values"] = decode_floats(args["values"])
    elif op == "log_artifact":
        from registrum.client.files import deliver_artifact

        deliver_artifact(transport, args)
        return
    elif op == "register_model":
        deliver_registration(transport, args)
        return
    elif op == "log_dataset":
        project, name = args.pop("project"), args.pop("name")
        transport.log_dataset(project, name, **args)
        return
    elif op == "set_code_version" and args.get("diff"):
        info = transport.put_blob(iter([args.pop("diff").encode()]))
        args["diff_sha256"] = info.sha256
    elif op == "create_run" and args.get("parent_id"):
        try:
            transport.create_run(**args)
        except RunNotFound as exc:
            if exc.context.get("run_id") != args["parent_id"]:
                raise
            # The parent's own writer (another process, or one still retrying) has not
            # delivered it yet: wait for it as for a store that is down.
            raise StoreUnavailable(
                f"parent run {args['parent_id']} has not reached the store yet"
            ) from exc
        return
    args.pop("diff", None)
    getattr(transport, op)(**args)


def deliver_registration(transport: Any, args: dict[str, Any]) -> None:
    """A registration queued while the store was unreachable. Its model is an artifact the
    store has (`artifact_id`), or files logged in the background: recording them again
    returns the artifact their own event made, which is then registered."""
    from registrum.client.files import deliver_artifact

    model = args.pop("model")
    if "artifact_id" in model:
        artifact_id = model["artifact_id"]
    else:
        artifact_id = deliver_artifact(transport, dict(model, run_id=args["run_id"])).id
    if args.get("metrics") is not None:
        args["metrics"] = {k: decode_nonfinite(x) for k, x in args["metrics"].items()}
    transport.register_model_version(args.pop("name"), artifact_id=artifact_id, **args)


class Writer:
    """Delivers one run's events to its store in the background."""

    def __init__(
        self,
        run_id: str,
        spool: Spool,
        open_transport: Callable[[], Any],
        *,
        offline: bool = False,
        strict: bool = False,
    ) -> None:
        self.run_id = run_id
        self.spool = spool
        self._open_transport = open_transport
        self._transport: Any = None
        self.offline = offline
        self.strict = strict
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)  # notified after each pass of the loop
        self._flushing = 0  # callers waiting in `flush`: the loop does not wait while any do
        self._points: list[tuple[str, int, float, float]] = []
        self._ops: list[dict[str, Any]] = []
        self._queue: deque[tuple[Path | None, dict[str, Any]]] = deque()
        self._disk_warned = False
        self._last_us = 0
        self._salt = random.getrandbits(8)  # several processes may write one run
        self._closing = False
        self._moving = False  # items taken from the buffers, not yet in the queue
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self.error: BaseException | None = None  # the first undeliverable failure, for strict mode
        self._thread = threading.Thread(
            target=self._loop, name=f"registrum-{run_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    # -- called from the training thread ------------------------------------

    def add_points(self, points: list[tuple[str, int, float, float]]) -> None:
        with self._lock:
            self._points.extend(points)
            if len(self._points) >= BATCH_POINTS:
                self._wake.notify()

    def submit(self, op: str, **args: Any) -> None:
        with self._lock:
            self._ops.append({"op": op, "args": {"run_id": self.run_id, **args}})
            self._wake.notify()

    def flush(self, timeout: float) -> bool:
        """Waits until everything logged so far is delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._wake.notify()
            try:
                while self._points or self._ops or self._moving or self._queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    # The writer notifies after each pass; the cap notices one that died.
                    self._progress.wait(min(remaining, 0.1))
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float) -> bool:
        """Delivers what it can within `timeout`, then stops; True if nothing is left."""
        delivered = self.flush(timeout) if not self.offline else False
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=max(1.0, timeout))
        if self._transport is not None and hasattr(self._transport, "close"):
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                self._transport.close()
        return delivered and not self._queue

    # -- the writer thread ---------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._closing and not self._ops and len(self._points) < BATCH_POINTS:
                    self._wake.wait(self._pause())
                points, self._points = self._points, []
                ops, self._ops = self._ops, []
                closing = self._closing
                self._moving = bool(points or ops)
            try:
                self._spool(points, ops)
                with self._lock:
                    self._moving = False
                if not self.offline:
                    self._deliver()
            except Exception as exc:
                self._fail(exc)
            with self._lock:
                self._progress.notify_all()
            if closing:
                with self._lock:
                    if not self._points and not self._ops:
                        return

    def _pause(self) -> float:
        """How long the loop may wait for more (under the lock): while a flush waits, not at
        all, unless what is left cannot be sent before the retry after an outage."""
        if not self._flushing or self.offline:
            return FLUSH_INTERVAL
        if self._points or (self._queue and time.monotonic() >= self._retry_at):
            return 0.0
        return min(FLUSH_INTERVAL, max(0.01, self._retry_at - time.monotonic()))

    def _spool(
        self, points: list[tuple[str, int, float, float]], ops: list[dict[str, Any]]
    ) -> None:
        for start in range(0, len(points), BATCH_POINTS):
            chunk = points[start : start + BATCH_POINTS]
            keys, steps, values, times = (list(c) for c in zip(*chunk, strict=True))
            # Unique per run across writers: microseconds, then this writer's own low bits.
            self._last_us = max(self._last_us + 1, time.time_ns() // 1000)
            seq = self._last_us << 8 | self._salt
            event = {
                "op": "log_metrics",
                "args": {
                    "run_id": self.run_id,
                    "seq": seq,
                    "keys": keys,
                    "steps": steps,
                    "values": encode_floats(values),
                    "timestamps": times,
                },
            }
            self._queue.append((self._persist(event), event))
        for event in ops:
            self._queue.append((self._persist(event), event))

    def _persist(self, event: dict[str, Any]) -> Path | None:
        """Spools an event; if the disk fails, it is still sent from memory."""
        try:
            return self.spool.append(event)
        except OSError as exc:
            if not self._disk_warned:
                self._disk_warned = True
                log.warning(
                    "registrum: cannot write the spool in %s (%s); sending from memory only",
                    self.spool.path,
                    exc,
                )
            return None

    def _deliver(self) -> None:
        while self._queue:
            if time.monotonic() < self._retry_at:
                return
            path, event = self._queue[0]
            try:
                if self._transport is None:
                    self._transport = self._open_transport()
                deliver(self._transport, event)
            except Exception as exc:
                if retryable(exc):
                    self._outage(exc)
                    return
                if path is not None:
                    self.spool.reject(path, f"{type(exc).__name__}: {exc}")
                self._fail(exc)
            else:
                if path is not None:
                    self.spool.done(path)
                self._recovered()
            self._queue.popleft()

    def _outage(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "registrum: the store is unreachable (%s); training goes on and everything "
                "is kept in %s until it can be delivered",
                exc,
                self.spool.path,
            )
            self._transport = None
        self._retry_at = time.monotonic() + self._backoff * (0.5 + random.random())
        self._backoff = min(self._backoff * 2, 10.0)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning(
                "registrum: the store is reachable again after %.0f s; delivering the spool",
                time.monotonic() - self._failing_since,
            )
        self._failing_since = None
        self._backoff = 0.5

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            log.warning("registrum: could not record %s: %s", self.run_id, exc)
