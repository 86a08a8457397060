"""Client settings, read from the environment when a run starts (never at import)."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from registrum.errors import InvalidArgument

MODES = ("online", "offline", "disabled")
SCHEMES = ("http", "https", "sqlite", "postgresql")
URL_FORMS = "http(s)://host:port, sqlite:///path.db or postgresql://user@host/db"


def store_url(url: str) -> str:
    """`url` checked and in the form the transports take (`postgres://` and `postgresql://`
    become `postgresql+psycopg://`).

    Raises InvalidArgument at once for what could never be delivered to, so a typo is an
    error at `init` rather than a run that waits in the spool for a store that cannot exist.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"store must be a URL string, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    shown = _without_password(url)
    if not sep or not scheme:
        raise InvalidArgument(f"store {shown!r} is not a URL: use {URL_FORMS}")
    base, _, driver = scheme.lower().partition("+")
    if base in ("http", "https"):
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise InvalidArgument(f"store {shown!r} is not a valid URL: {exc}") from None
        if driver or not host:
            raise InvalidArgument(f"store {shown!r} is not a server URL: use {base}://host:port")
        return url
    if base == "sqlite":
        if driver:
            raise InvalidArgument(f"store {shown!r}: use sqlite:///path.db (no driver name)")
        return url
    if base in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise InvalidArgument(
                f"store {shown!r} names the PostgreSQL driver {driver!r}; Registrum uses "
                'psycopg: write postgresql://... and pip install "registrum[postgres]"'
            )
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InvalidArgument(
                f"store {shown!r} is a PostgreSQL database and its driver (psycopg) is not "
                'installed: pip install "registrum[postgres]"'
            ) from None
        return f"postgresql+psycopg://{rest}"
    near = difflib.get_close_matches(base, [*SCHEMES, "postgres"], n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}://? " if near else ""
    raise InvalidArgument(
        f"store {shown!r} has an unknown scheme {scheme}://: {hint}Use {URL_FORMS}"
    )


def _without_password(url: str) -> str:
    """`url` with the password of its user part masked, for messages."""
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.partition("@")
    if not at or ":" not in user or "/" in user:
        return url
    return f"{scheme}{sep}{user.split(':', 1)[0]}:***@{host}"


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
        token: bearer token for the HTTP server (`REGISTRUM_TOKEN`, else the one
            `registrum login` stored for it).
        strict: `REGISTRUM_STRICT=1` makes tracking failures raise instead of warn.
        init_timeout: seconds `init` waits for an unreachable store before going on.
        flush_timeout: seconds `finish` waits for delivery before leaving the spool, while
            delivery makes progress (an unreachable store gets about 2 s).
        heartbeat_interval: seconds between the writer's heartbeats, which tell the server
            the run's process is alive (`REGISTRUM_HEARTBEAT_INTERVAL`, default 30).
    """

    store: str | None
    home: Path
    mode: str
    token: str | None
    strict: bool
    init_timeout: float
    flush_timeout: float
    heartbeat_interval: float = 30.0

    @property
    def spool_root(self) -> Path:
        return self.home / "spool"

    @classmethod
    def from_env(cls, *, store: str | None = None, mode: str | None = None) -> ClientSettings:
        mode = mode or os.environ.get("REGISTRUM_MODE") or "online"
        if mode not in MODES:
            raise InvalidArgument(f"mode {mode!r} is not one of {', '.join(MODES)}")
        home = Path(os.environ.get("REGISTRUM_HOME") or Path.home() / ".registrum").expanduser()
        url = store or os.environ.get("REGISTRUM_URL") or None
        heartbeat = _float_env("REGISTRUM_HEARTBEAT_INTERVAL", 30.0)
        if not heartbeat > 0:
            raise InvalidArgument(f"REGISTRUM_HEARTBEAT_INTERVAL must be above 0, got {heartbeat}")
        store = None if url is None else store_url(url)
        token = os.environ.get("REGISTRUM_TOKEN") or None
        if token is None and store is not None and store.startswith(("http://", "https://")):
            from registrum.client.credentials import stored_token

            token = stored_token(store)  # what `registrum login` stored for this server
        return cls(
            store=store,
            home=home,
            mode=mode,
            token=token,
            strict=os.environ.get("REGISTRUM_STRICT", "") not in ("", "0", "false"),
            init_timeout=_float_env("REGISTRUM_INIT_TIMEOUT", 5.0),
            flush_timeout=_float_env("REGISTRUM_FLUSH_TIMEOUT", 60.0),
            heartbeat_interval=heartbeat,
        )
