"""What every command module of the `registrum` command shares: the `--store` option, the
Client it opens, and how times are shown."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registrum.client.api import Client
from registrum.client.settings import ClientSettings
from registrum.errors import NotFound

Handler = Callable[[argparse.Namespace], int]

STORE_HELP = "http(s)://host:port or a database URL (default REGISTRUM_URL, else embedded)"


def add_store(parser: argparse.ArgumentParser, help: str = STORE_HELP) -> None:
    """Adds `--store`, which every command takes; `server`, `ui` and `sync` tell their own
    default in `help`."""
    parser.add_argument("--store", default=None, help=help)


def leaf(group: Any, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    """A subcommand of `group` that runs `handler`, with `--store` as its first option."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help)
    add_store(parser)
    parser.set_defaults(handler=handler)
    return parser


def open_client(args: argparse.Namespace, *, read: bool = False) -> Client:
    """A Client for `--store`; with `read`, one that creates no store where none is yet."""
    if read:
        require_store(args.store)
    return Client(args.store)


def require_store(store: str | None) -> None:
    """Raises NotFound when `store` (or the default) is a SQLite file that does not exist, so a
    command that only reads leaves no empty database and folders behind."""
    settings = ClientSettings.from_env(store=store)
    if settings.store is None:
        where = settings.home / "registrum.db"
        hint = f"nothing has been recorded under REGISTRUM_HOME={settings.home} yet"
    elif settings.store.startswith("sqlite:///") and settings.store != "sqlite:///:memory:":
        where = Path(settings.store.removeprefix("sqlite:///")).expanduser()
        hint = "nothing has been recorded there yet"
    else:
        return
    if not where.exists():
        raise NotFound(
            f"there is no store yet at {where}: {hint}. Start a run with registrum.init, "
            "or name a store with --store URL (or REGISTRUM_URL)"
        )


def when(stamp: float | None) -> str:
    """A time as the tables show it: local, to the minute; `-` for none."""
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def size_text(n: int) -> str:
    """A byte count as people read it: 512 B, 3.2 KiB, 1.5 GiB."""
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
