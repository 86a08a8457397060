"""`registrum datasets list|diff`: dataset versions, their differences and the models
trained on them."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import add_store, open_client
from registrum.cli._output import Column, add_format, emit, emit_one


def _datasets_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        versions = client.dataset_versions(args.project, args.name)
        trained = {
            d["version"]: d["models"] for d in client.dataset_models(args.project, args.name)
        }

    def models(d: Any) -> str | None:
        found = [f"{m['name']}@{m['version']}" for m in trained.get(d.version, [])]
        return ", ".join(found) or None

    columns = [
        Column("version", lambda d: d.version),
        Column("rows", lambda d: d.rows),
        Column("fingerprint", lambda d: d.fingerprint, 16),
        Column("models", models),
    ]
    emit(
        args,
        versions,
        columns,
        as_json=lambda d: {**d.to_dict(), "models": trained.get(d.version, [])},
    )
    return 0


def _datasets_diff(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        diff = client.diff_datasets(args.project, args.name, args.a, args.b)
    emit_one(args, diff, lambda: _print_diff(args.name, diff))
    return 0


def _print_diff(name: str, diff: dict[str, Any]) -> None:
    a, b = diff["a"], diff["b"]
    print(
        f"{name} v{a['version']} -> v{b['version']}: "
        f"{'same content' if diff['same_content'] else 'different content'}"
    )
    rows = diff["rows"]
    print(f"  rows: {rows['a']} -> {rows['b']}")
    for title in ("added", "removed"):
        for key, value in diff["schema"][title].items():
            print(f"  {title} {key}: {value}")
    for key, (old, new) in diff["schema"]["changed"].items():
        print(f"  changed {key}: {old} -> {new}")


def add_commands(commands: Any) -> None:
    """Adds `datasets list` and `datasets diff` to the `registrum` command."""
    datasets = commands.add_parser(
        "datasets", help="dataset versions, their differences and the models trained on them"
    ).add_subparsers(dest="action", required=True)
    listing = datasets.add_parser("list", help="the versions of a dataset")
    listing.add_argument("project")
    listing.add_argument("name")
    add_format(listing)
    add_store(listing)
    listing.set_defaults(handler=_datasets_list)
    diff = datasets.add_parser("diff", help="how two versions differ")
    for arg in ("project", "name", "a", "b"):
        diff.add_argument(arg)
    add_format(diff)
    add_store(diff)
    diff.set_defaults(handler=_datasets_diff)
