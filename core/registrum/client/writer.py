"""The background writer: spools points and events, delivers them in order, retries.

The training thread only appends, under a lock: points to the spool's points
file (shared memory: they survive the process being killed), other events to a
buffer. One thread per run turns new points into batches read back from the
file, writes each other event to the spool before sending it, sends in order
and marks or removes what the store acknowledges.
While the store is unreachable it backs off and keeps everything on disk, and
says so once; `flush` gives up after a short grace when nothing gets through, since
what it waits for is safe in the spool. While the run is alive it sends a heartbeat
every `heartbeat_interval` seconds, so the server can tell a dead run from a quiet one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registrum.client.points import BATCH_POINTS, PointsFile, SeqClock
from registrum.client.spool import PointsBatch, Spool
from registrum.client.transport import Transport
from registrum.entities import decode_floats, decode_nonfinite, encode_floats
from registrum.errors import RunNotFound, StoreError, StoreUnavailable

log = logging.getLogger("registrum")

# Points reach the spool and the store this often (or sooner, with anything else sent, a
# flush, or a full batch): each batch costs the store a transaction, whatever its size.
FLUSH_INTERVAL = 1.0
# Seconds `flush` keeps waiting while the store is unreachable and nothing has been delivered
# since: everything it waits for is in the spool already.
OUTAGE_GRACE = 2.0
OPS = (
    "create_run",
    "log_metrics",
    "log_params",
    "set_tags",
    "set_environment",
    "set_code_version",
    "log_dataset",
    "log_artifact",
    "log_media",
    "register_model",
    "add_run_input",
    "finish_run",
)


def retryable(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed later (the store or the network was down); a
    local file that is gone or unreadable will not come back by waiting."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return False
    return isinstance(exc, StoreError | ConnectionError | TimeoutError | OSError)


def deliver(transport: Transport, event: dict[str, Any]) -> None:
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
    elif op == "log_media":
        from registrum.client.media import deliver_media

        deliver_media(transport, args)
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


def deliver_registration(transport: Transport, args: dict[str, Any]) -> None:
    """A registration queued while the store was unreachable. Its model is an artifact the
    store has (`artifact_id`), or files logged in the background: recording them again
    returns the artifact their own event made, which is then registered. The event's
    `idempotency_key`, made when it was spooled, goes with it, so a delivery repeated after
    a lost answer or a crash returns the version the first one made."""
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
        open_transport: Callable[[], Transport],
        *,
        offline: bool = False,
        strict: bool = False,
        store: str | None = None,
        sync_command: str = "registrum sync",
        heartbeat_interval: float = 30.0,
    ) -> None:
        self.run_id = run_id
        self.spool = spool
        self._open_transport = open_transport
        self._transport: Transport | None = None
        self.offline = offline
        self.strict = strict
        self.store = store  # for messages: where the run goes (None: the embedded store)
        self.sync_command = sync_command  # what delivers this spool, for messages
        self.heartbeat_interval = heartbeat_interval
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)  # notified after each pass of the loop
        self._flushing = 0  # callers waiting in `flush`: the loop does not wait while any do
        # Points go to the current points file (`_file`); only when no points file can be
        # made (a full disk) are they kept in `_points` and spooled as events.
        self._file: PointsFile | None = None  # made at the first point
        self._in_memory = False  # no points file could be made: points stay in `_points`
        self._files: list[PointsFile] = []  # those with points not yet delivered, oldest first
        self._unqueued = 0  # points in the files not yet turned into batches
        self._points: list[tuple[str, int, float, float]] = []
        self._ops: list[dict[str, Any]] = []
        # An event, or a batch of a points file (read from the file when it is sent).
        self._queue: deque[tuple[Path | PointsBatch | None, dict[str, Any] | None]] = deque()
        self._disk_warned = False
        self._clock = SeqClock()
        self._closing = False
        self._moving = False  # items taken from the buffers, not yet in the queue
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self.error: BaseException | None = None  # the first undeliverable failure, for strict mode
        self._told: set[str] = set()  # kinds of failure already reported: one line each per run
        self._last_outage: BaseException | None = None
        self._refused: BaseException | None = None  # the first event the store refused
        self._rejected = 0
        self._delivered_at = 0.0  # monotonic time of the last delivery that succeeded
        self._heartbeat_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._loop, name=f"registrum-{run_id[:8]}", daemon=True
        )

    def start(self) -> None:
        _writers.add(self)
        self._thread.start()

    # -- called from the training thread ------------------------------------

    def add_points(self, points: list[tuple[str, int, float, float]]) -> None:
        """Writes points to the spool's points file: once this returns, they survive the
        process being killed."""
        with self._lock:
            taken, file = 0, self._file
            if file is None and not self._in_memory:
                file = self._next_file()
            while file is not None:
                taken = file.append(points, taken)
                if taken == len(points):
                    break
                file = self._next_file()
            self._unqueued += taken
            if taken < len(points):
                self._points.extend(points[taken:])
            if self._unqueued + len(self._points) >= BATCH_POINTS:
                self._wake.notify()

    def _next_file(self) -> PointsFile | None:
        """Seals the current points file and starts the next (under the lock); None when the
        disk refuses one: points are then kept in memory and spooled as events."""
        if self._file is not None:
            self._file.sealed = True
        try:
            self._file = self.spool.new_points()
        except (OSError, ValueError) as exc:
            self._file = None
            self._in_memory = True
            self._disk_warning(exc)
            return None
        self._files.append(self._file)
        return self._file

    def submit(self, op: str, **args: Any) -> None:
        with self._lock:
            self._ops.append({"op": op, "args": {"run_id": self.run_id, **args}})
            self._wake.notify()

    @property
    def outage(self) -> bool:
        """Whether the store is unreachable (the last delivery attempt failed)."""
        return self._failing_since is not None

    def flush(self, timeout: float) -> bool:
        """Waits until everything logged so far is delivered; False on timeout, or once the
        store has been unreachable for OUTAGE_GRACE seconds of this wait with nothing
        delivered (what is left is in the spool, and the wait would only delay the caller)."""
        began = time.monotonic()
        deadline = began + timeout
        with self._lock:
            self._flushing += 1
            self._wake.notify()
            try:
                while self._points or self._unqueued or self._ops or self._moving or self._queue:
                    now = time.monotonic()
                    remaining = deadline - now
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    stalled = now - max(began, self._delivered_at) >= OUTAGE_GRACE
                    if self._failing_since is not None and stalled:
                        return False
                    # The writer notifies after each pass; the cap notices one that died.
                    self._progress.wait(min(remaining, 0.1))
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float) -> bool:
        """Delivers what it can within `timeout`, then stops; True if nothing is left."""
        with self._lock:
            # Try at once rather than at the end of the outage's backoff: the store may be
            # back, and `flush` waits only while deliveries get through.
            self._retry_at, self._backoff = 0.0, 0.5
        delivered = self.flush(timeout) if not self.offline else False
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=max(1.0, timeout))
        if self._transport is not None and hasattr(self._transport, "close"):
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                self._transport.close()
        if not self._thread.is_alive():
            for file in self._files:  # what is left in them stays for `registrum sync`
                file.close()
        return delivered and not self._queue and not self._rejected

    def final_notice(self) -> str:
        """The one line `finish` prints when the run's data did not all reach the store:
        what failed, where the data is kept, and the command that delivers it."""
        where = self.spool.path
        if self._rejected:
            return (
                f"registrum: the store refused {self._rejected} event(s) of run {self.run_id} "
                f"({describe_error(self._refused)}); they are kept in {where / 'rejected'}; after "
                f"fixing that, deliver them with: {self.sync_command} --retry-rejected"
            )
        if self.offline:
            return (
                f"registrum: run {self.run_id} ran offline; its data is kept in {where}; "
                f"deliver it with: {self.sync_command}"
            )
        why = (
            f"the store is unreachable ({describe_error(self._last_outage)})"
            if self._failing_since is not None
            else "delivery did not finish in time"
        )
        return (
            f"registrum: run {self.run_id} is not fully delivered: {why}; its data is kept "
            f"in {where}; deliver it with: {self.sync_command}"
        )

    # -- the writer thread ---------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                waiting = self._unqueued + len(self._points)
                if not self._closing and not self._ops and waiting < BATCH_POINTS:
                    self._wake.wait(self._pause())
                points, self._points = self._points, []
                ops, self._ops = self._ops, []
                files = [(f, f.count) for f in self._files if f.queued < f.count]
                self._unqueued = 0
                self._files = [f for f in self._files if not _drop_delivered(f)]
                closing = self._closing
                self._moving = bool(points or ops or files)
            try:
                self._batch(files)
                self._spool(points, ops)
                with self._lock:
                    self._moving = False
                if not self.offline:
                    self._deliver()
                    if not closing:
                        self._heartbeat()
            except Exception as exc:
                self._fail(exc)
            with self._lock:
                self._progress.notify_all()
            if closing:
                with self._lock:
                    if not self._points and not self._unqueued and not self._ops:
                        return

    def _pause(self) -> float:
        """How long the loop may wait for more (under the lock): while a flush waits, not at
        all, unless what is left cannot be sent before the retry after an outage."""
        if not self._flushing or self.offline:
            return FLUSH_INTERVAL
        if self._points or self._unqueued or (self._queue and time.monotonic() >= self._retry_at):
            return 0.0
        return min(FLUSH_INTERVAL, max(0.01, self._retry_at - time.monotonic()))

    def _batch(self, files: list[tuple[PointsFile, int]]) -> None:
        """Queues the points written to the files since the last pass, as batches."""
        for file, count in files:
            for start in range(file.queued, count, BATCH_POINTS):
                end = min(count, start + BATCH_POINTS)
                self._queue.append((PointsBatch(file, start, end, self._clock.next()), None))
            file.queued = count

    def _spool(
        self, points: list[tuple[str, int, float, float]], ops: list[dict[str, Any]]
    ) -> None:
        for start in range(0, len(points), BATCH_POINTS):
            chunk = points[start : start + BATCH_POINTS]
            keys, steps, values, times = (list(c) for c in zip(*chunk, strict=True))
            seq = self._clock.next()
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
            self._disk_warning(exc)
            return None

    def _disk_warning(self, exc: BaseException) -> None:
        if not self._disk_warned:
            self._disk_warned = True
            log.warning(
                "registrum: cannot write the spool in %s (%s); what cannot be written is "
                "sent from memory only",
                self.spool.path,
                exc,
            )

    def _deliver(self) -> None:
        while self._queue:
            if time.monotonic() < self._retry_at:
                return
            path, event = self._queue[0]
            if self._transport is None:
                try:
                    self._transport = self._open_transport()
                except Exception as exc:
                    # The store could not be opened: nothing was refused, so nothing is
                    # rejected; the events wait as in an outage (a wrong URL fails in `init`).
                    self._outage(exc)
                    return
            try:
                if isinstance(path, PointsBatch):
                    # Named in the file before it goes: a process killed before the store's
                    # answer leaves `registrum sync` the same batch, under the same seq.
                    path.file.begin(path.end, path.seq)
                    deliver(self._transport, path.event(self.run_id))
                elif event is not None:
                    deliver(self._transport, event)
            except Exception as exc:
                if retryable(exc):
                    self._outage(exc)
                    return
                if path is not None:
                    self.spool.reject(path, f"{type(exc).__name__}: {exc}")
                self._rejected += 1
                self._refuse(exc, kept=path is not None)
            else:
                if path is not None:
                    self.spool.done(path)
                self._recovered()
            self._queue.popleft()

    def _heartbeat(self) -> None:
        """Tells the store the run's process is alive, every `heartbeat_interval` seconds
        while nothing waits to be sent (a queue that waits means an outage, or a run the store
        does not have yet). A heartbeat that fails is only skipped: the next delivery tells."""
        now = time.monotonic()
        if self._queue or self._failing_since is not None or self._transport is None:
            return
        if now - self._heartbeat_at < self.heartbeat_interval:
            return
        self._heartbeat_at = now
        with contextlib.suppress(Exception):
            self._transport.heartbeat(self.run_id)

    def _tell(self, kind: str, message: str) -> None:
        """Writes a warning once per run and kind of failure."""
        if kind not in self._told:
            self._told.add(kind)
            log.warning("%s", message)

    def _outage(self, exc: BaseException) -> None:
        self._last_outage = exc
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            where = self.store or "the embedded store"
            self._tell(
                "outage",
                f"registrum: cannot reach the store at {where} ({describe_error(exc)}); training "
                f"goes on and run {self.run_id}'s data is kept in {self.spool.path} until it "
                f"is delivered (in the background, or with: {self.sync_command})",
            )
            self._transport = None
        self._retry_at = time.monotonic() + self._backoff * (0.5 + random.random())
        self._backoff = min(self._backoff * 2, 10.0)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "registrum: the store is reachable again after %.0f s; delivering the spool",
                time.monotonic() - self._failing_since,
            )
        self._failing_since = None
        self._backoff = 0.5
        self._delivered_at = time.monotonic()

    def _refuse(self, exc: BaseException, *, kept: bool) -> None:
        """The store refused an event (a bad token, a missing role, invalid data)."""
        if self._refused is None:
            self._refused = exc
        if self.error is None:
            self.error = exc
        where = f"kept in {self.spool.path / 'rejected'}" if kept else "not kept (no spool)"
        self._tell(
            "refused",
            f"registrum: the store refused run {self.run_id}'s data: {describe_error(exc)}; it is "
            f"{where}; after fixing that, deliver it with: {self.sync_command} --retry-rejected",
        )

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._tell(
            "failed", f"registrum: could not record run {self.run_id}: {describe_error(exc)}"
        )


_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _forked() -> None:
    """In a child made by fork (a data loader's worker) the parent's points files are the
    parent's to write: two processes appending to one file would overwrite each other. The
    child keeps its points in memory, where they stayed before (its writer thread is gone)."""
    for writer in list(_writers):
        writer._file = None
        writer._files = []
        writer._in_memory = True


os.register_at_fork(after_in_child=_forked)


def _drop_delivered(file: PointsFile) -> bool:
    """Removes a points file no longer written whose points the store has; True if it did."""
    if file.closed:
        return True
    if file.sealed and file.done >= file.count:
        file.remove()
        return True
    return False


def describe_error(exc: BaseException | None) -> str:
    """An error as one line: its class and message (the server's, for a refused request)."""
    if exc is None:
        return "no error recorded"
    text = " ".join(str(exc).split())
    # A connection error from requests repeats the URL in three forms around its cause (an
    # errno and its text): the cause is what the user needs.
    cause = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    pool = text.find(": HTTPConnectionPool(") if cause else -1
    if pool < 0 and cause:
        pool = text.find(": HTTPSConnectionPool(")
    if cause and pool >= 0:
        text = f"{text[:pool]}: {cause.group(1).strip()}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
