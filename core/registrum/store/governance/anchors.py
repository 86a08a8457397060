"""Signed anchors of the audit chain, kept outside the database.

The chain of audit events (see `audit.py`) shows that events were changed or removed, but
someone who can write to the database can also recompute every hash after a change. An
anchor is the chain head at one moment, `{"event", "hash", "time", "key", "signature"}`,
signed with HMAC-SHA256 under a key that is not in the database. A chain that was rewritten
at or below an anchor's event no longer has the anchored hash there, and the attacker cannot
sign a new anchor without the key.

Where things live (both read from the environment when first needed):

* the key: `REGISTRUM_AUDIT_KEY` (a secret of at least 32 characters, the same on every
  server of one database), else the file `audit.key` in the audit folder, made on first use
  with 32 random bytes, mode 0600;
* the audit folder: `REGISTRUM_AUDIT_DIR`, else `REGISTRUM_HOME` (`~/.registrum`);
* recorded anchors: `audit-anchors/<store id>.jsonl` in the audit folder, one signed anchor
  a line, appended by the server periodically and by every verification; the store id is a
  digest of the database's address (never its password), so stores do not share a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registrum import validation as v
from registrum.errors import InvalidArgument, StoreError

KEY_ENV = "REGISTRUM_AUDIT_KEY"
DIR_ENV = "REGISTRUM_AUDIT_DIR"
MIN_KEY = 32
_SIGNED = ("event", "hash", "time", "key")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_SOURCE = 1024


def audit_dir() -> Path:
    """The folder of the audit key and the recorded anchors."""
    from registrum.store.db import default_home

    configured = os.environ.get(DIR_ENV)
    return Path(configured).expanduser() if configured else default_home()


def store_id(url: Any) -> str:
    """A digest of where the database is (a SQLAlchemy URL), without its password."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ":memory:"
        where = "sqlite:" + (
            database if database == ":memory:" else str(Path(database).expanduser().resolve())
        )
    else:
        where = f"{url.get_backend_name()}://{url.username}@{url.host}:{url.port}/{url.database}"
    return hashlib.sha256(where.encode()).hexdigest()[:24]


def _private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _load_key(folder: Path) -> bytes:
    """The key from the environment, else from (or into) `folder/audit.key`."""
    configured = os.environ.get(KEY_ENV)
    if configured is not None:
        if len(configured) < MIN_KEY:
            raise InvalidArgument(
                f"{KEY_ENV} is {len(configured)} characters long; an audit key needs at least "
                f"{MIN_KEY} (make one with: "
                "python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return configured.encode()
    path = folder / "audit.key"
    _private_folder(folder)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StoreError(
            f"the audit key {path} can be read by other users (mode {mode:04o}): "
            f"run chmod 600 {path}"
        )
    key = path.read_text().strip()
    if len(key) < MIN_KEY:
        raise StoreError(
            f"the audit key {path} holds {len(key)} characters, fewer than {MIN_KEY}: "
            "restore it from a backup (a new key breaks every anchor signed so far)"
        )
    return key.encode()


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Recorded:
    """A line of the anchors file: its number, and the anchor or why it is not one."""

    line: int
    anchor: dict[str, Any] | None
    problem: str | None = None


class Seal:
    """Signs chain heads with the audit key and keeps the signed anchors of one store.

    Args:
        folder: the audit folder (the key file, unless `REGISTRUM_AUDIT_KEY` is set, and the
            recorded anchors).
        store: the store id (`store_id`), naming its anchors file.
    """

    def __init__(self, folder: Path, store: str) -> None:
        self.folder = folder
        self.path = folder / "audit-anchors" / f"{store}.jsonl"
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._last: tuple[int, str] | None = None  # (event, hash) of the newest line

    def key(self) -> bytes:
        """The key, loaded (or made) on first use."""
        if self._key is None:
            self._key = _load_key(self.folder)
        return self._key

    def key_id(self) -> str:
        """Names the key without revealing it: anchors say which key signed them."""
        return hmac.new(self.key(), b"registrum audit key id", hashlib.sha256).hexdigest()[:16]

    def _signature(self, anchor: Mapping[str, Any]) -> str:
        body = json.dumps({k: anchor[k] for k in _SIGNED}, sort_keys=True, separators=(",", ":"))
        message = f"registrum audit anchor v1\n{body}".encode()
        return hmac.new(self.key(), message, hashlib.sha256).hexdigest()

    def sign(self, event: int, digest: str, at: float) -> dict[str, Any]:
        """The signed anchor of the chain whose event `event` has hash `digest`."""
        anchor: dict[str, Any] = {
            "event": event,
            "hash": digest,
            "time": _time(at),
            "key": self.key_id(),
        }
        anchor["signature"] = self._signature(anchor)
        return anchor

    def signature_problem(self, anchor: Mapping[str, Any]) -> str | None:
        """Why `anchor`'s signature does not hold under this key; None when it does."""
        if hmac.compare_digest(self._signature(anchor), anchor["signature"]):
            return None
        mine = self.key_id()
        if anchor["key"] != mine:
            return (
                f"its signature names audit key {anchor['key']}, but this store's key is {mine}: "
                "it was signed with another key, or forged"
            )
        return (
            "its signature does not match its content under this store's audit key: "
            "it was forged or altered"
        )

    def record(self, anchor: Mapping[str, Any]) -> bool:
        """Appends `anchor` to the store's anchors file (made 0600 on first use), unless the
        newest line already anchors the same head; True when it was appended."""
        line = json.dumps(dict(anchor), sort_keys=True, separators=(",", ":")) + "\n"
        with self._lock:
            if self._last is None:
                newest = self.last()
                self._last = (newest["event"], newest["hash"]) if newest else (-1, "")
            if self._last == (anchor["event"], anchor["hash"]):
                return False
            _private_folder(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line  # a line cut short by a crash stays apart, skipped
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._last = (anchor["event"], anchor["hash"])
            return True

    def recorded(self) -> Iterator[Recorded]:
        """The anchors recorded so far, oldest first; a line cut short by a crash while it
        was written (the last one, without its newline) is skipped."""
        try:
            data = self.path.read_text()
        except FileNotFoundError:
            return
        lines = data.split("\n")
        for number, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                yield Recorded(number, parse(json.loads(line), f"line {number}"))
            except (ValueError, InvalidArgument) as exc:
                why = (
                    f"is not a signed anchor ({exc}): altered, or cut short by a crash "
                    "(then delete the line)"
                )
                yield Recorded(number, None, why)

    def last(self) -> dict[str, Any] | None:
        """The newest recorded anchor that parses, if any."""
        newest = None
        for entry in self.recorded():
            if entry.anchor is not None:
                newest = entry.anchor
        return newest


def parse(value: Any, what: str) -> dict[str, Any]:
    """An anchor as given (a JSON object), checked for shape; `source`, if present, is a label
    for reports and is not signed."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{what} must be a signed anchor object as `registrum audit anchor` prints it, "
            f"got {type(value).__name__}"
        )
    missing = [k for k in (*_SIGNED, "signature") if k not in value]
    if missing:
        raise InvalidArgument(
            f"{what} is not a signed audit anchor: it lacks {', '.join(missing)} "
            "(use the JSON that `registrum audit anchor` prints, unchanged)"
        )
    event = value["event"]
    if isinstance(event, bool) or not isinstance(event, int) or not 0 <= event < 2**63:
        raise InvalidArgument(f"{what}: event must be an event id (an integer >= 0), got {event!r}")
    for field, pattern in (("hash", _HEX64), ("signature", _HEX64), ("key", _KEY_ID)):
        if not isinstance(value[field], str) or not pattern.match(value[field]):
            raise InvalidArgument(f"{what}: {field} {value[field]!r} is not lowercase hex")
    if not isinstance(value["time"], str) or len(value["time"]) > 64:
        raise InvalidArgument(f"{what}: time must be the anchor's ISO 8601 time string")
    source = value.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE):
        raise InvalidArgument(f"{what}: source must be a label of at most {MAX_SOURCE} characters")
    # Both are shown back in reports: text a response can carry.
    v.text(value["time"], f"{what}: time")
    if source is not None:
        v.text(source, f"{what}: source")
    anchor = {k: value[k] for k in (*_SIGNED, "signature")}
    if source is not None:
        anchor["source"] = source
    return anchor
