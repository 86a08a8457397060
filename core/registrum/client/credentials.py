"""Tokens that `registrum login` stored, per server, in the user's config
(`$REGISTRUM_CONFIG`, else `~/.config/registrum/credentials.json`; mode 0600).

A client for a server without `REGISTRUM_TOKEN` uses the token stored for that server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def credentials_path() -> Path:
    explicit = os.environ.get("REGISTRUM_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "registrum" / "credentials.json"


def server_key(url: str) -> str:
    """How a server is named in the file: its URL without a trailing slash."""
    return url.rstrip("/")


def _read() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, unreadable or damaged: as if signed in nowhere
        return {}
    return data if isinstance(data, dict) else {}


def stored_login(url: str) -> dict[str, Any] | None:
    """What `registrum login` stored for the server at `url`: token, user, expires_at."""
    found = _read().get("servers", {}).get(server_key(url))
    return found if isinstance(found, dict) and isinstance(found.get("token"), str) else None


def stored_token(url: str) -> str | None:
    found = stored_login(url)
    return None if found is None else str(found["token"])


def store_login(url: str, login: dict[str, Any]) -> Path:
    """Keeps `login` for `url`; the file and its folder are readable by the user alone."""
    data = _read()
    data.setdefault("servers", {})[server_key(url)] = login
    return _write(data)


def forget_login(url: str) -> dict[str, Any] | None:
    """Removes what was stored for `url`; what it was, or None."""
    data = _read()
    gone = data.get("servers", {}).pop(server_key(url), None)
    if gone is not None:
        _write(data)
    return gone if isinstance(gone, dict) else None


def _write(data: dict[str, Any]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return path
