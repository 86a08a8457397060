"""`registrum retention set|show|apply`: what a project keeps of its runs' checkpoints and
artifacts (docs/lifecycle.md)."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import leaf, open_client
from registrum.cli._output import add_format, emit_one
from registrum.entities import Project
from registrum.validation import duration

_OFF = "none"


def _ttl_text(seconds: float | None) -> str:
    if seconds is None:
        return "kept"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _describe(project: Project) -> str:
    keep = project.keep_checkpoints
    checkpoints = "every one kept" if keep is None else f"the newest {keep} and the best"
    return (
        f"project {project.name}: checkpoints per run: {checkpoints}; artifacts of runs "
        f"that registered nothing: {_ttl_text(project.artifact_ttl)}"
        + ("" if project.artifact_ttl is None else " after they were made")
    )


def _set(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        current = client.project(args.project)
        keep: int | None = current.keep_checkpoints
        ttl: float | None = current.artifact_ttl
        if args.keep_checkpoints is not None:
            keep = None if args.keep_checkpoints == _OFF else int(args.keep_checkpoints)
        if args.artifact_ttl is not None:
            ttl = (
                None if args.artifact_ttl == _OFF else duration(args.artifact_ttl, "--artifact-ttl")
            )
        updated = client.set_retention(args.project, keep_checkpoints=keep, artifact_ttl=ttl)
    print(_describe(updated))
    print("applied at every garbage collection (registrum gc), or now: registrum retention apply")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        project = client.project(args.project)
    policy = {
        "project": project.name,
        "keep_checkpoints": project.keep_checkpoints,
        "artifact_ttl": project.artifact_ttl,
    }
    emit_one(args, policy, lambda: print(_describe(project)))
    return 0


def _apply(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        went = client.apply_retention(args.project)
    print(
        f"deleted {went.get('checkpoints', 0)} checkpoint(s) and {went.get('artifacts', 0)} "
        f"expired artifact(s) of project {args.project} (restorable until registrum gc "
        "collects them)"
    )
    return 0


def _count(text: str) -> str:
    if text != _OFF and not (text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a number of checkpoints or {_OFF!r}")
    return text


def add_commands(commands: Any) -> None:
    group = commands.add_parser(
        "retention", help="what a project keeps of its checkpoints and artifacts"
    ).add_subparsers(dest="action", required=True)
    setting = leaf(group, "set", "set a project's retention policy (a project admin)", _set)
    setting.add_argument("project")
    setting.add_argument(
        "--keep-checkpoints",
        type=_count,
        default=None,
        metavar="N",
        help=f"checkpoints kept per run beyond the best (always kept); {_OFF!r}: all",
    )
    setting.add_argument(
        "--artifact-ttl",
        default=None,
        metavar="DURATION",
        help="artifacts of runs that registered nothing expire this long after they were "
        f"made, such as 30d; {_OFF!r}: never",
    )
    show = leaf(group, "show", "a project's retention policy", _show)
    show.add_argument("project")
    add_format(show)
    apply = leaf(group, "apply", "apply a project's policy now", _apply)
    apply.add_argument("project")
