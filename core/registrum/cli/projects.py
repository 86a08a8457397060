"""`registrum projects create|list|show`: the projects runs, models and roles live in."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import leaf, open_client, when


def _create(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        project = client.create_project(args.name, description=args.description)
    print(f"created project {project.name} (you are its admin)")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        projects = client.projects()
    if not projects:
        print("no projects yet (registrum projects create NAME, or start a run)")
        return 0
    width = max(len("name"), *(len(p.name) for p in projects))
    print(f"{'name':<{width}}  {'created':<19}  description")
    for p in projects:
        print(f"{p.name:<{width}}  {when(p.created_at):<19}  {p.description or ''}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        project = client.project(args.name)
        models = client.models(args.name)
    print(f"project {project.name}")
    print(f"  created: {when(project.created_at)}")
    print(f"  description: {project.description or '-'}")
    print(f"  models: {', '.join(m.name for m in models) or '-'}")
    return 0


def add_commands(commands: Any) -> None:
    projects = commands.add_parser(
        "projects", help="create, list and show projects"
    ).add_subparsers(dest="action", required=True)
    create = leaf(projects, "create", "a new project (you become its admin)", _create)
    create.add_argument("name")
    create.add_argument("--description", default=None)
    leaf(projects, "list", "the projects you may read", _list)
    show = leaf(projects, "show", "a project: when it was made, its description, its models", _show)
    show.add_argument("name")
