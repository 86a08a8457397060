"""`registrum datasets list|diff`: dataset versions, their differences and the models
trained on them."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import add_store, open_client


def _datasets_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        versions = client.dataset_versions(args.project, args.name)
        trained = {
            d["version"]: d["models"] for d in client.dataset_models(args.project, args.name)
        }
    print(f"{'version':>7}  {'rows':>10}  {'fingerprint':<16}  models trained on it")
    for d in versions:
        models = ", ".join(f"{m['name']}@{m['version']}" for m in trained.get(d.version, []))
        rows = "-" if d.rows is None else f"{d.rows:,}"
        print(f"{d.version:>7}  {rows:>10}  {d.fingerprint[:16]:<16}  {models or '-'}")
    return 0


def _datasets_diff(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        diff = client.diff_datasets(args.project, args.name, args.a, args.b)
    a, b = diff["a"], diff["b"]
    print(
        f"{args.name} v{a['version']} -> v{b['version']}: "
        f"{'same content' if diff['same_content'] else 'different content'}"
    )
    rows = diff["rows"]
    print(f"  rows: {rows['a']} -> {rows['b']}")
    for title in ("added", "removed"):
        for key, value in diff["schema"][title].items():
            print(f"  {title} {key}: {value}")
    for key, (old, new) in diff["schema"]["changed"].items():
        print(f"  changed {key}: {old} -> {new}")
    return 0


def add_commands(commands: Any) -> None:
    """Adds `datasets list` and `datasets diff` to the `registrum` command."""
    datasets = commands.add_parser(
        "datasets", help="dataset versions, their differences and the models trained on them"
    ).add_subparsers(dest="action", required=True)
    listing = datasets.add_parser("list", help="the versions of a dataset")
    listing.add_argument("project")
    listing.add_argument("name")
    add_store(listing)
    listing.set_defaults(handler=_datasets_list)
    diff = datasets.add_parser("diff", help="how two versions differ")
    for arg in ("project", "name", "a", "b"):
        diff.add_argument(arg)
    add_store(diff)
    diff.set_defaults(handler=_datasets_diff)
