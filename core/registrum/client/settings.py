"""Client settings, read from the environment when a run starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from registrum.errors import InvalidArgument

MODES = ("online", "offline", "disabled")


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number of seconds") from None


@dataclass(frozen=True)
class ClientSettings:
    """Where runs go and how patiently.

    Attributes:
        store: `http(s)://host:port`, a database URL, or None for the embedded default.
        home: `REGISTRUM_HOME` (default `~/.registrum`): the embedded store and the spool.
        mode: `online` (send in the background), `offline` (spool only, deliver
            later with `registrum sync`) or `disabled` (every call a no-op).
        token: bearer token for the HTTP server (`REGISTRUM_TOKEN`).
        strict: `REGISTRUM_STRICT=1` makes tracking failures raise instead of warn.
        init_timeout: seconds `init` waits for an unreachable store before going on.
        flush_timeout: seconds `finish` waits for delivery before leaving the spool.
    """

    store: str | None
    home: Path
    mode: str
    token: str | None
    strict: bool
    init_timeout: float
    flush_timeout: float

    @property
    def spool_root(self) -> Path:
        return self.home / "spool"

    @classmethod
    def from_env(cls, *, store: str | None = None, mode: str | None = None) -> ClientSettings:
        mode = mode or os.environ.get("REGISTRUM_MODE") or "online"
        if mode not in MODES:
            raise InvalidArgument(f"mode {mode!r} is not one of {', '.join(MODES)}")
        home = Path(os.environ.get("REGISTRUM_HOME") or Path.home() / ".registrum").expanduser()
        return cls(
            store=store or os.environ.get("REGISTRUM_URL") or None,
            home=home,
            mode=mode,
            token=os.environ.get("REGISTRUM_TOKEN") or None,
            strict=os.environ.get("REGISTRUM_STRICT", "") not in ("", "0", "false"),
            init_timeout=_float_env("REGISTRUM_INIT_TIMEOUT", 5.0),
            flush_timeout=_float_env("REGISTRUM_FLUSH_TIMEOUT", 60.0),
        )
