"""`registrum demo`: trains a small model, tracks it and registers it."""

from __future__ import annotations

import argparse
from typing import Any

from registrum import demo
from registrum.cli._common import add_store


def _demo(args: argparse.Namespace) -> int:
    return demo.main(store=args.store, steps=args.steps)


def add_commands(commands: Any) -> None:
    """Adds `demo` to the `registrum` command."""
    parser = commands.add_parser("demo", help="train a small model, track it, register it")
    parser.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    add_store(parser)
    parser.set_defaults(handler=_demo)
