"""`registrum sync`: delivers the spools of runs that ran offline or whose process died."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from registrum.cli._common import add_store
from registrum.client.settings import ClientSettings
from registrum.client.sync import sync_spools


def _sync(args: argparse.Namespace) -> int:
    """Delivers spools; exits 1 while anything stays undelivered or refused."""
    settings = ClientSettings.from_env(store=args.store)
    results = sync_spools(
        settings.spool_root,
        home=settings.home,
        store=settings.store if args.store else None,
        token=settings.token,
        retry_rejected=args.retry_rejected,
    )
    if not results:
        print(f"nothing to sync in {settings.spool_root}")
        return 0
    unfinished = 0
    for r in results:
        if r.left:
            state = f"{r.left} event(s) left"
        elif r.rejected:
            state = f"{r.rejected} event(s) rejected"
        else:
            state = "done"
        crashed = "; its process is gone: marked crashed" if r.crashed else ""
        print(f"run {r.run_id}: {r.delivered} event(s) delivered, {state}{crashed}")
        if r.error:
            print(
                f"  could not finish: {r.error}; run registrum sync again once the store is "
                "reachable (or --store URL to deliver elsewhere)",
                file=sys.stderr,
            )
        if r.rejected:
            print(
                f"  the store refused them: {r.reason or 'no reason kept'}; fix that, then: "
                "registrum sync --retry-rejected",
                file=sys.stderr,
            )
        unfinished += bool(r.left or r.rejected)
    return 1 if unfinished else 0


def add_commands(commands: Any) -> None:
    """Adds `sync` to the `registrum` command."""
    sync = commands.add_parser(
        "sync", help="deliver the spooled data of runs that ran offline or whose process died"
    )
    add_store(sync, help="deliver there instead of where each run was going")
    sync.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the events the store refused (after fixing a token, a role or a URL)",
    )
    sync.set_defaults(handler=_sync)
