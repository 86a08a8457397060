"""The `registrum` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from registrum import __version__
from registrum.cli import (
    access,
    approvals,
    artifacts,
    audit,
    backups,
    datasets,
    db,
    demo,
    gc,
    importing,
    lineage,
    login,
    models,
    projects,
    retention,
    runs,
    serve,
    server,
    sync,
    webhooks,
)
from registrum.errors import RegistrumError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command: each module adds its group, in the order `--help` lists them."""
    parser = argparse.ArgumentParser(prog="registrum", description=__doc__)
    parser.add_argument("--version", action="version", version=f"registrum {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    server.add_commands(commands)
    serve.add_commands(commands)
    sync.add_commands(commands)
    projects.add_commands(commands)
    runs.add_commands(commands)
    artifacts.add_commands(commands)
    models_group = models.add_commands(commands)
    lineage.add_commands(commands)
    audit.add_commands(commands)
    datasets.add_commands(commands)
    webhooks.add_commands(commands)
    access.add_commands(commands)
    login.add_commands(commands)
    approvals.add_commands(commands, models_group)
    importing.add_commands(commands)
    backups.add_commands(commands)
    gc.add_commands(commands)
    retention.add_commands(commands)
    db.add_commands(commands)
    demo.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except RegistrumError as exc:
        print(f"registrum {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`registrum runs list p | head`): stop quietly, as Unix
        # tools do, and keep Python from complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
