"""`registrum runs list|show|code|files|download`: a project's runs, one run, a run's code
version, and a run's files (what MLflow's `log_artifact` wrote)."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import add_store, open_client, when


def _runs_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        runs = client.runs(
            args.project,
            filter=args.filter,
            order_by=args.order_by,
            limit=args.limit,
            include_deleted=args.deleted,
        )
    print(f"{'id':<32}  {'name':<24}  {'status':<9}  {'started':<16}  metrics")
    for r in runs:
        shown = ", ".join(f"{k}={m.last:.4g}" for k, m in list(r.metrics.items())[:4])
        name = (r.name or "-")[:24]
        print(f"{r.id:<32}  {name:<24}  {r.status:<9}  {when(r.start_time):<16}  {shown}")
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        r = client.run(args.run_id)
        files = client.run_files(args.run_id)
    print(f"run {r.id}  ({r.project}/{r.name or '-'})  {r.status}")
    print(f"  job type {r.job_type or '-'}, user {r.user or '-'}, host {r.host or '-'}")
    print(f"  started {when(r.start_time)}, ended {when(r.end_time)}, parent {r.parent_id or '-'}")
    for title, items in (("params", r.params), ("tags", r.tags)):
        if items:
            print(f"  {title}:")
            for k, value in items.items():
                print(f"    {k} = {value}")
    if r.metrics:
        print("  metrics (last, min, max, count):")
        for k, m in r.metrics.items():
            print(f"    {k}: {m.last:.6g}, {m.min}, {m.max}, {m.count} at step {m.last_step}")
    if files:
        size = _size(sum(x.size for x in files))
        print(f"  files: {len(files)}, {size} (registrum runs files {r.id})")
    return 0


def _size(n: int) -> str:
    """A byte count as people read it: 512 B, 3.2 KiB, 1.5 GiB."""
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def _runs_files(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        files = client.run_files(args.run_id, args.prefix)
    if not files:
        where = f" under {args.prefix!r}" if args.prefix else ""
        print(f"run {args.run_id} has no files{where}")
        return 0
    print(f"{'size':>10}  {'sha256':<12}  path")
    for x in files:
        print(f"{_size(x.size):>10}  {x.sha256[:12]:<12}  {x.path}")
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
    add_store(runs_list)
    runs_list.set_defaults(handler=_runs_list)
    runs_show = runs.add_parser("show", help="one run: params, tags, metric summaries")
    runs_show.add_argument("run_id")
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
    add_store(files)
    files.set_defaults(handler=_runs_files)
    download = runs.add_parser("download", help="download a run's file or folder")
    download.add_argument("run_id")
    download.add_argument("path", nargs="?", default=None, help="a file or folder (default all)")
    download.add_argument("-o", "--out", default=".", help="the folder to write into")
    add_store(download)
    download.set_defaults(handler=_runs_download)
