"""`registrum gc`: remove for good what was deleted before the grace period, then the blobs
nothing references."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import add_store, open_client, size_text
from registrum.cli._output import add_format, emit_one

_KINDS = ("runs", "artifacts", "model_versions", "models", "projects")


def _gc(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        report = client.collect_garbage(args.older_than, dry_run=args.dry_run)
    if args.format != "table":
        emit_one(args, report.to_dict(), lambda: None)
        return 0
    verb = "would remove" if report.dry_run else "removed"
    counts = ", ".join(f"{getattr(report, kind)} {kind.replace('_', ' ')}" for kind in _KINDS)
    print(f"{verb} {counts}")
    print(f"{verb} {report.blobs} blob(s), {size_text(report.bytes)} reclaimed")
    if report.kept_in_use:
        print(f"kept {report.kept_in_use} deleted run(s) or artifact(s) that live ones use")
    for project, tally in sorted(report.per_project.items()):
        shown = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(tally.items()))
        print(f"  {project}: {shown}")
    if report.dry_run:
        print("dry run: nothing was removed (run without --dry-run to remove it)")
    print(f"took {report.seconds:.1f} s")
    return 0


def add_commands(commands: Any) -> None:
    gc = commands.add_parser(
        "gc",
        help="remove for good what was deleted before the grace period, and unused blobs",
        description="Permanently removes runs, artifacts, model versions, models and "
        "projects soft-deleted longer ago than --older-than, then the blobs (on the local "
        "folder or the bucket) that nothing references. Registered model versions, their "
        "aliases and what their lineage stands on are never touched. A server admin.",
    )
    gc.add_argument(
        "--older-than",
        default="7d",
        metavar="DURATION",
        help="what was deleted longer ago than this goes, such as 0s, 12h or 7d (default 7d)",
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would go, and remove nothing")
    add_format(gc)
    add_store(gc)
    gc.set_defaults(handler=_gc)
