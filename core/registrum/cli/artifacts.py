"""`registrum artifacts list|delete|restore`: a project's versioned artifacts (checkpoints,
files, models)."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import leaf, open_client, size_text
from registrum.cli._output import Column, When, add_format, emit
from registrum.errors import InvalidArgument


def _reference(text: str) -> tuple[str, int]:
    """`NAME:VERSION` as a name and a version number."""
    name, _, version = text.rpartition(":")
    if not name or not version.isdigit() or int(version) < 1:
        raise InvalidArgument(
            f"{text!r} is not an artifact version: write NAME:VERSION, for example "
            "checkpoints:3 (registrum artifacts list PROJECT shows them)"
        )
    return name, int(version)


def _list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        found = client.artifacts(
            args.project, name=args.name, run_id=args.run, include_deleted=args.deleted
        )
    columns = [
        Column("artifact", lambda a: f"{a.name}:{a.version}"),
        Column("type", lambda a: a.type),
        Column("files", lambda a: a.file_count),
        Column("bytes", lambda a: a.size, shown=size_text),
        Column("created", lambda a: When(a.created_at)),
        Column("run", lambda a: a.run_id),
    ]
    if args.deleted:
        columns.append(
            Column("deleted", lambda a: None if a.deleted_at is None else When(a.deleted_at))
        )
    emit(args, found, columns, empty=f"no artifacts in project {args.project}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for text in args.refs:
            name, version = _reference(text)
            client.delete_artifact(args.project, name, version)
            print(
                f"deleted {name}:{version} (registrum artifacts restore {args.project} "
                f"{name}:{version} brings it back until collected)"
            )
    return 0


def _restore(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for text in args.refs:
            name, version = _reference(text)
            artifact = client.restore_artifact(args.project, name, version)
            print(f"restored {artifact.name}:{artifact.version}")
    return 0


def add_commands(commands: Any) -> None:
    group = commands.add_parser(
        "artifacts", help="list, delete and restore artifact versions"
    ).add_subparsers(dest="action", required=True)
    listing = leaf(group, "list", "a project's artifact versions, newest first", _list)
    listing.add_argument("project")
    listing.add_argument("--name", default=None, help="only versions of this artifact")
    listing.add_argument("--run", default=None, metavar="RUN_ID", help="only this run's")
    listing.add_argument("--deleted", action="store_true", help="list deleted versions too")
    add_format(listing)
    delete = leaf(group, "delete", "delete artifact versions (restorable until collected)", _delete)
    delete.add_argument("project")
    delete.add_argument("refs", nargs="+", metavar="NAME:VERSION")
    restore = leaf(group, "restore", "bring deleted artifact versions back", _restore)
    restore.add_argument("project")
    restore.add_argument("refs", nargs="+", metavar="NAME:VERSION")
