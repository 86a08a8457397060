"""`registrum models list|show|evals|tag|untag|describe|alias|unalias` and `registrum
download`: registered models, their versions, how each version did on each evaluation
dataset, their tags, descriptions and aliases, and a version's files."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from registrum.cli._common import add_store, leaf, open_client, size_text, when
from registrum.cli._output import Column, When, add_format, emit, text
from registrum.client.api import Client
from registrum.entities import Evaluation, ModelVersion
from registrum.errors import ApprovalRequired, InvalidArgument


def _models_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        models = client.models(args.project, include_deleted=args.deleted)
    columns = [
        Column("name", lambda m: m.name),
        Column("project", lambda m: m.project),
        Column("latest", lambda m: m.latest_version),
        Column("aliases", lambda m: ", ".join(f"{a}={n}" for a, n in m.aliases.items()) or None),
    ]
    if args.deleted:
        columns.append(
            Column("deleted", lambda m: None if m.deleted_at is None else When(m.deleted_at))
        )
    emit(args, models, columns, empty="no registered models yet")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        if args.at is not None:
            versions = [client.model_version(args.ref, at=args.at)]
            print(f"{args.ref} at {args.at}:")
        elif "@" in args.ref:
            versions = [client.model_version(args.ref)]
        else:
            versions = client.model_versions(args.ref, include_deleted=args.deleted)
    if args.format != "table":
        columns = [
            Column("model", lambda v: v.model),
            Column("version", lambda v: v.version),
            Column("aliases", lambda v: ", ".join(v.aliases) or None),
            Column("run", lambda v: v.run_id),
            Column("flavor", lambda v: v.flavor),
            Column("created", lambda v: When(v.created_at)),
            Column("files", lambda v: v.artifact.file_count),
            Column("bytes", lambda v: v.artifact.size, shown=size_text),
            Column("description", lambda v: v.description),
        ]
        emit(args, versions, columns)
        return 0
    for mv in versions:
        aliases = f"  @{', @'.join(mv.aliases)}" if mv.aliases else ""
        if mv.deleted_at is not None:
            aliases += f"  (deleted {when(mv.deleted_at)})"
        print(
            f"{mv.model}@{mv.version}{aliases}  from run {mv.run_id or '-'}  ({mv.flavor or '-'})"
        )
        metrics = ", ".join(f"{k}={text(x)}" for k, x in mv.metrics.items())
        print(f"  metrics: {metrics or '-'}")
        if mv.description:
            print(f"  description: {mv.description}")
        tags = ", ".join(f"{k}={x}" for k, x in sorted(mv.tags.items()))
        if tags:
            print(f"  tags: {tags}")
        print(f"  files: {mv.artifact.file_count}, {size_text(mv.artifact.size)}")
    return 0


def _models_evals(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        history = client.evaluations(args.name)
    if args.format != "table":
        labels = {d["id"]: f"{d['project']}/{d['name']}:{d['version']}" for d in history.datasets}
        columns = [
            Column("dataset", lambda c: labels.get(c.dataset)),
            Column("version", lambda c: c.version),
            Column("metric", lambda c: c.metric),
            Column("value", lambda c: c.value),
        ]
        emit(args, history.evaluations, columns)
        return 0
    if not history.evaluations:
        print(f"{args.name}: no evaluations yet (runs that use_model a version and log metrics)")
        return 0
    labels = {d["id"]: f"{d['project']}/{d['name']} v{d['version']}" for d in history.datasets}
    by_dataset: dict[str | None, dict[tuple[int, str], Evaluation]] = {}
    for cell in history.evaluations:
        by_dataset.setdefault(cell.dataset, {})[cell.version, cell.metric] = cell
    for dataset, cells in by_dataset.items():
        metrics = sorted({m for _, m in cells})
        versions = sorted({ver for ver, _ in cells})
        print(f"on {labels.get(dataset, 'no recorded dataset')}:")
        print("  version  " + "  ".join(f"{m:>14}" for m in metrics))
        for ver in versions:
            values = [cells.get((ver, m)) for m in metrics]
            shown = [f"{text(c.value) if c else '-':>14}" for c in values]
            print(f"  {ver:>7}  " + "  ".join(shown))
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    """`key=value` arguments as a dict; a missing `=` is an error that says so."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"tags are given as key=value, got {item!r}")
        pairs[key] = value
    return pairs


def _tag(args: argparse.Namespace) -> int:
    tags = _pairs(args.tags)
    with open_client(args) as client:
        if "@" in args.ref:
            client.set_version_tags(args.ref, tags)
        else:
            client.set_model_tags(args.ref, tags)
    print(f"tagged {args.ref}: {', '.join(f'{k}={x}' for k, x in tags.items())}")
    return 0


def _untag(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for key in args.keys:
            if "@" in args.ref:
                client.delete_version_tag(args.ref, key)
            else:
                client.delete_model_tag(args.ref, key)
    print(f"removed from {args.ref}: {', '.join(args.keys)}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.set_description(args.ref, args.text)
    print(f"described {args.ref}")
    return 0


def _alias(args: argparse.Namespace) -> int:
    return _move(
        args,
        f"{args.name}@{args.alias}",
        lambda client: client.set_alias(args.name, args.alias, args.version),
        done="",
        pending=f"to version {args.version}",
    )


def _rollback(args: argparse.Namespace) -> int:
    return _move(
        args,
        args.ref,
        lambda client: client.rollback(args.ref),
        done=" (rolled back)",
        pending="back",
    )


def _move(
    args: argparse.Namespace,
    ref: str,
    move: Callable[[Client], ModelVersion],
    *,
    done: str,
    pending: str,
) -> int:
    """Moves alias `ref`; a protected alias opens a promotion request instead, which is what
    was asked: it says which."""
    with open_client(args) as client:
        try:
            moved = move(client)
        except ApprovalRequired as exc:
            if exc.request_id is None:
                raise
            print(
                f"{ref} is protected: opened request {exc.request_id}, which moves it "
                f"{pending} once approved (registrum requests show {exc.request_id})"
            )
            return 0
    print(f"{ref} -> version {moved.version}{done}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if "@" in args.ref:
            client.delete_model_version(args.ref)
        else:
            client.delete_model(args.ref)
    print(f"deleted {args.ref} (registrum models restore {args.ref} brings it back)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if "@" in args.ref:
            version = client.restore_model_version(args.ref)
            print(f"restored {version.model}@{version.version} (its aliases are not: set them)")
        else:
            model = client.restore_model(args.ref)
            print(f"restored model {model.name} with its versions")
    return 0


def _unalias(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete_alias(args.name, args.alias)
    print(f"removed alias {args.name}@{args.alias}")
    return 0


def _download(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        out = client.download(args.ref, args.dir)
    print(f"downloaded {args.ref} into {out}")
    return 0


def add_commands(commands: Any) -> Any:
    """Adds `models list|show|evals` and `download` to the `registrum` command; returns the
    `models` group, which `approvals` extends with `aliases-history`."""
    models = commands.add_parser(
        "models", help="registered models: list, show, tag, describe, alias"
    ).add_subparsers(dest="action", required=True)
    models_list = models.add_parser("list", help="registered models")
    models_list.add_argument("--project", default=None)
    models_list.add_argument("--deleted", action="store_true", help="list deleted models too")
    add_format(models_list)
    add_store(models_list)
    models_list.set_defaults(handler=_models_list)
    models_show = models.add_parser("show", help="a model's versions, or one (NAME@REF)")
    models_show.add_argument("ref")
    models_show.add_argument(
        "--deleted", action="store_true", help="a model's deleted versions too"
    )
    models_show.add_argument(
        "--at",
        default=None,
        help="what REF named at this time (ISO 8601, e.g. 2026-11-01T00:00:00Z, or Unix "
        "seconds; UTC unless it says otherwise): an alias from its history",
    )
    add_format(models_show)
    add_store(models_show)
    models_show.set_defaults(handler=_models_show)
    evals = models.add_parser("evals", help="how every version did on each evaluation dataset")
    evals.add_argument("name")
    add_format(evals)
    add_store(evals)
    evals.set_defaults(handler=_models_evals)
    tag = leaf(models, "tag", "set tags on a model (NAME) or a version (NAME@REF)", _tag)
    tag.add_argument("ref", help="NAME or NAME@VERSION / NAME@ALIAS")
    tag.add_argument("tags", nargs="+", metavar="KEY=VALUE")
    untag = leaf(models, "untag", "remove tags from a model or a version", _untag)
    untag.add_argument("ref", help="NAME or NAME@VERSION / NAME@ALIAS")
    untag.add_argument("keys", nargs="+", metavar="KEY")
    describe = leaf(models, "describe", "set the description of a model or a version", _describe)
    describe.add_argument("ref", help="NAME or NAME@VERSION / NAME@ALIAS")
    describe.add_argument("text")
    alias = leaf(
        models,
        "alias",
        "point an alias at a version (a protected alias opens a promotion request)",
        _alias,
    )
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)
    rollback = leaf(
        models,
        "rollback",
        "move an alias back to the version it pointed at before its last move",
        _rollback,
    )
    rollback.add_argument("ref", metavar="NAME@ALIAS")
    delete = leaf(
        models, "delete", "delete a model (NAME) or a version (NAME@N); restorable", _delete
    )
    delete.add_argument("ref", help="NAME or NAME@VERSION")
    restore = leaf(models, "restore", "bring a deleted model or version back", _restore)
    restore.add_argument("ref", help="NAME or NAME@VERSION")
    unalias = leaf(models, "unalias", "remove an alias", _unalias)
    unalias.add_argument("name")
    unalias.add_argument("alias")

    download = commands.add_parser("download", help="download a model version's files")
    download.add_argument("ref", help="NAME@ALIAS or NAME@VERSION")
    download.add_argument("dir")
    add_store(download)
    download.set_defaults(handler=_download)
    return models
