"""`registrum projects create|list|show|delete|restore`: the projects runs, models and roles
live in."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import leaf, open_client, when
from registrum.cli._output import Column, When, add_format, emit, emit_one


def _create(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        project = client.create_project(args.name, description=args.description)
    print(f"created project {project.name} (you are its admin)")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        projects = client.projects(include_deleted=args.deleted)
    columns = [
        Column("name", lambda p: p.name),
        Column("created", lambda p: When(p.created_at)),
        Column("description", lambda p: p.description, 48),
    ]
    if args.deleted:
        columns.append(
            Column("deleted", lambda p: None if p.deleted_at is None else When(p.deleted_at))
        )
    emit(
        args,
        projects,
        columns,
        empty="no projects yet (registrum projects create NAME, or start a run)",
    )
    return 0


def _delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete_project(args.name)
    print(
        f"deleted project {args.name} with its runs and artifacts "
        f"(registrum projects restore {args.name} brings them back until collected)"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        project = client.restore_project(args.name)
    print(f"restored project {project.name} with the runs and artifacts deleted with it")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        project = client.project(args.name)
        models = client.models(args.name)

    def render() -> None:
        print(f"project {project.name}")
        print(f"  created: {when(project.created_at)}")
        print(f"  description: {project.description or '-'}")
        print(f"  models: {', '.join(m.name for m in models) or '-'}")

    emit_one(args, {**project.to_dict(), "models": [m.name for m in models]}, render)
    return 0


def add_commands(commands: Any) -> None:
    projects = commands.add_parser(
        "projects", help="create, list, show, delete and restore projects"
    ).add_subparsers(dest="action", required=True)
    create = leaf(projects, "create", "a new project (you become its admin)", _create)
    create.add_argument("name")
    create.add_argument("--description", default=None)
    listing = leaf(projects, "list", "the projects you may read", _list)
    listing.add_argument("--deleted", action="store_true", help="list deleted projects too")
    add_format(listing)
    show = leaf(projects, "show", "a project: when it was made, its description, its models", _show)
    show.add_argument("name")
    add_format(show)
    delete = leaf(
        projects, "delete", "delete a project with its runs (restorable until collected)", _delete
    )
    delete.add_argument("name")
    restore = leaf(projects, "restore", "bring a deleted project back", _restore)
    restore.add_argument("name")
