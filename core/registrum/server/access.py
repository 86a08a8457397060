"""The server side of access control: the first server admin, made on first start."""

from __future__ import annotations

import logging
import sys

from registrum.server.settings import Settings
from registrum.store import Store

log = logging.getLogger("registrum.server")


def bootstrap_admin(store: Store, settings: Settings) -> None:
    """Makes the first server admin when the store has no user yet. A token made here is
    printed once to the console; one given in the settings is not printed."""
    secret = store.bootstrap_admin(name=settings.admin_name, token=settings.admin_token)
    if secret is None:
        return
    if settings.admin_token is not None:
        log.warning("created the server admin %r with the given token", settings.admin_name)
        return
    print(
        f"registrum server: created the server admin {settings.admin_name!r}. "
        f"Its API token, shown this once:\n\n    {secret}\n\n"
        "Keep it secret; use it as REGISTRUM_TOKEN to add users (registrum users add) "
        "and make their tokens (registrum tokens create).",
        file=sys.stderr,
        flush=True,
    )
