"""`registrum runs list|show|code|files|download`: a project's runs, one run, a run's code
version, and a run's files (what MLflow's `log_artifact` wrote)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from registrum.cli._common import add_store, open_client, size_text, when
from registrum.cli._output import Column, When, add_format, emit, emit_one, print_table, text
from registrum.entities import Artifact, Run
from registrum.errors import InvalidArgument

# The columns every `runs list` shows, then the metrics most runs share (or `--columns`).
_FIXED = ("id", "name", "status", "job_type", "parent", "started")
_ATTRIBUTES: dict[str, Callable[[Run], Any]] = {
    "id": lambda r: r.id,
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "job_type": lambda r: r.job_type,
    "parent": lambda r: r.parent_id,
    "user": lambda r: r.user,
    "host": lambda r: r.host,
    "started": lambda r: When(r.start_time),
    "ended": lambda r: None if r.end_time is None else When(r.end_time),
    "duration": lambda r: None if r.end_time is None else round(r.end_time - r.start_time, 3),
}
_WIDTHS = {"name": 24, "parent": 32}


def _column(name: str) -> Column:
    """A `runs list` column: an attribute, `metrics.KEY` (the last value), `params.KEY` or
    `tags.KEY`."""
    kind, _, key = name.partition(".")
    if name in _ATTRIBUTES:
        return Column(name, _ATTRIBUTES[name], _WIDTHS.get(name))
    if kind == "metrics" and key:
        return Column(name, lambda r: r.metrics[key].last if key in r.metrics else None)
    if kind == "params" and key:
        return Column(name, lambda r: r.params.get(key), 24)
    if kind == "tags" and key:
        return Column(name, lambda r: r.tags.get(key), 24)
    raise InvalidArgument(
        f"unknown column {name!r}: use metrics.KEY, params.KEY, tags.KEY or one of "
        f"{', '.join(_ATTRIBUTES)}"
    )


def _shared_metrics(runs: list[Run], most: int = 4) -> list[str]:
    """The metric keys most of the runs have, by name: the default metric columns."""
    counts: dict[str, int] = {}
    for r in runs:
        for key in r.metrics:
            counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda k: (-counts[k], k))[:most]
    return [f"metrics.{k}" for k in sorted(ranked)]


def _runs_list(args: argparse.Namespace) -> int:
    asked = [c.strip() for c in (args.columns or "").split(",") if c.strip()]
    for name in asked:
        _column(name)  # an unknown column is refused before anything is read
    with open_client(args, read=True) as client:
        runs = client.runs(
            args.project,
            filter=args.filter,
            order_by=args.order_by,
            limit=args.limit,
            include_deleted=args.deleted,
            top_level=args.top_level,
        )
    extra = asked or _shared_metrics(runs)
    columns = [_column(n) for n in (*_FIXED, *(n for n in extra if n not in _FIXED))]
    emit(args, runs, columns, empty=f"no runs in project {args.project} match")
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        r = client.run(args.run_id)
        files = client.run_files(args.run_id)
        outputs = client.artifacts(r.project, run_id=r.id)
        graph = client.lineage(f"run:{r.id}", direction="both", depth=1)
    node = f"run:{r.id}"
    nodes = {n["id"]: n for n in graph.nodes}
    inputs = [nodes[e.source] | {"role": e.role} for e in graph.edges if e.target == node]
    made = [nodes[e.target] for e in graph.edges if e.source == node]
    datasets = [n for n in inputs if n["kind"] == "dataset"]
    versions = [n for n in made if n["kind"] == "model"]
    checkpoints = [a for a in outputs if a.type == "checkpoint"]
    artifacts = [a for a in outputs if a.type != "checkpoint"]
    record = {
        **r.to_dict(),
        "artifacts": [_artifact_json(a) for a in artifacts],
        "checkpoints": [_artifact_json(a) for a in checkpoints],
        "datasets": [_dataset_json(d) for d in datasets],
        "registered_versions": [f"{v['name']}@{v['version']}" for v in versions],
        "files": {"count": len(files), "bytes": sum(x.size for x in files)},
    }

    def render() -> None:
        print(f"run {r.id}  ({r.project}/{r.name or '-'})  {r.status}")
        print(f"  job type {r.job_type or '-'}, user {r.user or '-'}, host {r.host or '-'}")
        print(
            f"  started {when(r.start_time)}, ended {when(r.end_time)}, parent {r.parent_id or '-'}"
        )
        for title, items in (("params", r.params), ("tags", r.tags)):
            if items:
                print(f"  {title}:")
                for k, value in items.items():
                    print(f"    {k} = {text(value)}")
        if r.metrics:
            print("  metrics (last, min, max, count, at step):")
            rows = [
                [
                    f"    {k}",
                    text(m.last),
                    text(m.min),
                    text(m.max),
                    text(m.count),
                    text(m.last_step),
                ]
                for k, m in r.metrics.items()
            ]
            print_table(["   ", "last", "min", "max", "count", "step"], rows)
        for title, listed in (("artifacts", artifacts), ("checkpoints", checkpoints)):
            if listed:
                print(f"  {title}:")
                for a in sorted(listed, key=lambda a: (a.name, a.version)):
                    best = "  (best)" if a.metadata.get("best") else ""
                    step = a.metadata.get("step")
                    at = f", step {step}" if step is not None else ""
                    print(
                        f"    {a.name}:{a.version}  {a.type}, {a.file_count} file(s), "
                        f"{size_text(a.size)}{at}{best}"
                    )
        if datasets:
            print("  datasets:")
            for d in datasets:
                print(f"    {d['label']} ({d['role']})")
        if versions:
            shown = ", ".join(f"{v['name']}@{v['version']}" for v in versions)
            print(f"  registered: {shown}")
        if files:
            size = size_text(sum(x.size for x in files))
            print(f"  files: {len(files)}, {size} (registrum runs files {r.id})")

    emit_one(args, record, render)
    return 0


def _artifact_json(a: Artifact) -> dict[str, Any]:
    return {
        "name": a.name,
        "version": a.version,
        "type": a.type,
        "size": a.size,
        "files": a.file_count,
        "metadata": a.metadata,
    }


def _dataset_json(node: dict[str, Any]) -> dict[str, Any]:
    return {k: node.get(k) for k in ("project", "name", "version", "fingerprint", "rows", "role")}


def _runs_files(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        files = client.run_files(args.run_id, args.prefix)
    where = f" under {args.prefix!r}" if args.prefix else ""
    columns = [
        Column("size", lambda x: x.size, shown=size_text),
        Column("sha256", lambda x: x.sha256, shown=lambda sha: sha[:12]),
        Column("path", lambda x: x.path),
    ]
    emit(args, files, columns, empty=f"run {args.run_id} has no files{where}")
    return 0


def _runs_download(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        out = client.download_run_files(args.run_id, args.out, path=args.path)
    print(f"downloaded {args.path or 'the files'} of run {args.run_id} to {out}")
    return 0


def _runs_code(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        if args.other is None:
            code = client.code_version(args.run_id)
            diff = client.code_diff(args.run_id) if code else None
            if code is None:
                print(f"run {args.run_id}: no code version recorded")
                return 0
            print(f"run {args.run_id}")
            for field in ("commit", "branch", "remote", "dirty"):
                print(f"  {field}: {code[field]}")
            if diff:
                print(f"  uncommitted diff ({len(diff.splitlines())} lines):")
                print(diff if args.diff else "  (--diff prints it)")
            return 0
        compared = client.compare_code(args.run_id, args.other)
    print(
        f"code of {args.run_id} and {args.other}: "
        f"{'the same' if compared['same_code'] else 'different'}"
    )
    for field, (a, b) in compared["differences"].items():
        print(f"  {field}: {a}  ->  {b}")
    if compared["diff_of_diffs"]:
        print(compared["diff_of_diffs"])
    return 0


def _runs_delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for run_id in args.run_ids:
            client.delete_run(run_id)
            print(f"deleted run {run_id} (registrum runs restore {run_id} brings it back)")
    return 0


def _runs_restore(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for run_id in args.run_ids:
            run = client.restore_run(run_id)
            print(f"restored run {run.id} in project {run.project}")
    return 0


def _runs_move(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        run = client.move_run(args.run_id, args.project)
    print(f"moved run {run.id} to project {run.project}")
    return 0


def add_commands(commands: Any) -> None:
    """Adds `runs list`, `show`, `code`, `files` and `download` to the `registrum` command."""
    runs = commands.add_parser(
        "runs", help="list, show, delete, restore and move runs"
    ).add_subparsers(dest="action", required=True)
    runs_list = runs.add_parser("list", help="runs of a project, filtered and ordered")
    runs_list.add_argument("project")
    runs_list.add_argument("--filter", default=None, help='e.g. "metrics.loss < 0.3"')
    runs_list.add_argument("--order-by", default=None, help='e.g. "-metrics.val_acc"')
    runs_list.add_argument("--limit", type=int, default=20)
    runs_list.add_argument(
        "--deleted", action="store_true", help="list deleted runs too (restorable)"
    )
    runs_list.add_argument(
        "--top-level", action="store_true", help="only runs without a parent (no sweep trials)"
    )
    runs_list.add_argument(
        "--columns",
        default=None,
        metavar="COLS",
        help="comma-separated columns after id, name, status, job type, parent and start: "
        "metrics.KEY, params.KEY, tags.KEY, user, host, ended, duration (default: the "
        "metrics most runs share)",
    )
    add_format(runs_list)
    add_store(runs_list)
    runs_list.set_defaults(handler=_runs_list)
    runs_show = runs.add_parser(
        "show",
        help="one run: params, tags, metrics, artifacts, checkpoints, datasets, registered "
        "versions",
    )
    runs_show.add_argument("run_id")
    add_format(runs_show)
    add_store(runs_show)
    runs_show.set_defaults(handler=_runs_show)
    delete = runs.add_parser("delete", help="delete runs (restorable until collected)")
    delete.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    add_store(delete)
    delete.set_defaults(handler=_runs_delete)
    restore = runs.add_parser("restore", help="bring deleted runs back")
    restore.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    add_store(restore)
    restore.set_defaults(handler=_runs_restore)
    move = runs.add_parser("move", help="move a run, with its child runs, to another project")
    move.add_argument("run_id")
    move.add_argument("project")
    add_store(move)
    move.set_defaults(handler=_runs_move)
    code = runs.add_parser("code", help="a run's code version, or two runs' compared")
    code.add_argument("run_id")
    code.add_argument("other", nargs="?", default=None, help="a second run to compare with")
    code.add_argument("--diff", action="store_true", help="print the uncommitted diff")
    add_store(code)
    code.set_defaults(handler=_runs_code)
    files = runs.add_parser("files", help="a run's files (what MLflow's log_artifact wrote)")
    files.add_argument("run_id")
    files.add_argument("--prefix", default=None, help="only the files under this folder")
    add_format(files)
    add_store(files)
    files.set_defaults(handler=_runs_files)
    download = runs.add_parser("download", help="download a run's file or folder")
    download.add_argument("run_id")
    download.add_argument("path", nargs="?", default=None, help="a file or folder (default all)")
    download.add_argument("-o", "--out", default=".", help="the folder to write into")
    add_store(download)
    download.set_defaults(handler=_runs_download)
