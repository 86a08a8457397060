"""`Run`: what a training script logs to, and the runs alive; no call waits on I/O."""

from __future__ import annotations

import atexit
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from registrum import validation as v
from registrum.client.media import RunMedia
from registrum.client.outputs import RunOutputs
from registrum.client.settings import ClientSettings
from registrum.client.writer import Writer
from registrum.errors import InvalidArgument, RegistrumError

log = logging.getLogger("registrum")

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("registrum_run", default=None)
_live: list[Run] = []
_live_lock = threading.Lock()


def _number(key: str, value: Any) -> float:
    """A metric value as a float; NaN and ±inf are kept, anything non-numeric is refused."""
    if type(value) is float or type(value) is int:
        return float(value)
    if isinstance(value, str | bytes) or value is None:
        raise InvalidArgument(
            f"run.log: the value of {key!r} is {value!r}; a metric must be a number"
        )
    item = getattr(value, "item", None)  # numpy scalars, 0-d arrays and tensors
    if item is not None:
        try:
            value = item()
        except (ValueError, RuntimeError):
            raise InvalidArgument(
                f"run.log: the value of {key!r} has more than one element; log a number"
            ) from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"run.log: the value of {key!r} is a {type(value).__name__}; a metric must be a number"
        ) from None


_STEP_LIMIT = 1 << 63
CAPTURE_TIMEOUT = 30.0  # seconds `finish` waits for the environment and code capture


class Config(dict[str, Any]):
    """The run's params: a dict whose updates are recorded.

    Nested dicts are flattened in the store (`optimizer.lr`).
    """

    def __init__(self, run: Run, initial: Mapping[str, Any]) -> None:
        super().__init__(initial)
        self._run = run

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        super().update(changes)
        self._run._record("log_params", params=changes)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._run._record("log_params", params={key: value})


class Run(RunOutputs, RunMedia):
    """One tracked run. Made by `registrum.init`; logs without blocking; finish it with
    `finish()`, a `with` block, or at interpreter exit."""

    def __init__(
        self,
        *,
        run_id: str,
        project: str,
        name: str | None,
        settings: ClientSettings,
        writer: Writer | None,
        config: Mapping[str, Any],
    ) -> None:
        self.id = run_id
        self.project = project
        self.name = name
        self.settings = settings
        self._writer = writer
        self.config = Config(self, config)
        self._step = 0
        self._keys: set[Any] = set()  # metric keys `log` has checked
        self._media_steps: dict[str, int] = {}  # each media key's next step
        self._finished = False
        self._token: contextvars.Token[Run | None] | None = None
        self._sampler: Any = None
        self._capturing: threading.Thread | None = None  # environment and code capture

    @property
    def disabled(self) -> bool:
        return self._writer is None

    @property
    def spool_path(self) -> Any:
        return None if self._writer is None else self._writer.spool.path

    def log(self, data: Mapping[str, Any], step: int | None = None) -> None:
        """Records metric values at `step` (the next step when omitted). Returns at once."""
        if not isinstance(data, Mapping):
            raise InvalidArgument(
                f"run.log takes a dict of metric names to numbers, got {type(data).__name__}"
            )
        if step is None:
            step = self._step
        elif type(step) is not int:
            if isinstance(step, bool) or not hasattr(step, "__index__"):
                raise InvalidArgument(f"run.log: step must be an integer, got {step!r}")
            step = int(step)
        if not -_STEP_LIMIT <= step < _STEP_LIMIT:
            raise InvalidArgument(f"run.log: step {step} does not fit in 64 bits")
        if not self._keys.issuperset(data):
            # Once per key: a bad key found later by the store would refuse the whole batch.
            for key in data:
                v.key(key, "metric name")
            self._keys.update(data)
        self._step = step + 1
        now = time.time()
        points = [(key, step, _number(key, value), now) for key, value in data.items()]
        if self._writer is not None and points:
            self._writer.add_points(points)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets tags (string values; numbers are turned into strings)."""
        self._record("set_tags", tags=v.string_map(tags, "tags"))

    def finish(self, status: str = "finished", *, timeout: float | None = None) -> None:
        """Closes the run and waits (up to `timeout`, default REGISTRUM_FLUSH_TIMEOUT) for
        everything to reach the store; what does not stays in the spool for `registrum sync`."""
        if self._finished:
            return
        v.status(status)
        self._finished = True
        with _live_lock:
            if self in _live:
                _live.remove(self)
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:
                _current.set(None)  # finished from another context than it started in
        if self._sampler is not None:
            self._sampler.stop()
        if self._writer is None:
            return
        if self._capturing is not None:
            self._capturing.join(CAPTURE_TIMEOUT)
        self._writer.submit("finish_run", status=status, end_time=time.time())
        wait = self.settings.flush_timeout if timeout is None else timeout
        delivered = self._writer.close(wait)
        if self._transport is not None and hasattr(self._transport, "close"):
            self._transport.close()
        if delivered:
            self._writer.spool.remove()
        else:
            self._writer.spool.unlock()
            log.warning("%s", self._writer.final_notice())
        self._raise_if_strict()

    def _start_sampler(self, interval: float) -> None:
        from registrum.capture.system import SystemSampler

        writer = self._writer
        step = iter(range(1 << 62))

        def on_sample(values: dict[str, float]) -> None:
            if writer is not None:
                at, now = next(step), time.time()
                writer.add_points([(k, at, float(x), now) for k, x in values.items()])

        self._sampler = SystemSampler(on_sample, interval=interval)
        self._sampler.start()

    def _record(self, op: str, **args: Any) -> None:
        if self._finished:
            raise InvalidArgument(
                f"run {self.id} is finished; start a new run, "
                "or resume it with registrum.init(id=...)"
            )
        if self._writer is not None:
            self._writer.submit(op, **args)
            self._raise_if_strict()

    def _raise_if_strict(self) -> None:
        if self._writer is not None and self.settings.strict and self._writer.error is not None:
            error, self._writer.error = self._writer.error, None
            raise error

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt:
            self.finish("killed")
        else:
            self.finish("finished" if exc_type is None else "failed")

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.name or self.id} id={self.id}>"


def active_run() -> Run | None:
    """The run integrations join: the one started in this context, else the latest live one."""
    run = _current.get()
    if run is not None and not run._finished:
        return run
    with _live_lock:
        return _live[-1] if _live else None


def _activate(run: Run) -> Run:
    run._token = _current.set(run)
    with _live_lock:
        _live.append(run)
    _install_exit_hooks()
    return run


_hooks_installed = False
_failed = False


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        global _failed
        _failed = True
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_all)


def _finish_all() -> None:
    """At interpreter exit: finish every live run (failed after an uncaught exception)."""
    with _live_lock:
        runs = list(reversed(_live))
    for run in runs:
        try:
            run.finish("failed" if _failed else "finished")
        except RegistrumError as exc:
            log.warning("registrum: could not finish run %s: %s", run.id, exc)


__all__ = ["Run", "active_run"]
