"""The shape of the `registrum` command: every command takes `--store`, declared in one
place; each module of `registrum.cli` imports alone, and none reaches back into the package
or into another command module, at import time or lazily."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import registrum.cli
from registrum.cli import build_parser, main

CLI = Path(registrum.cli.__file__).parent
MODULES = sorted(p.stem for p in CLI.glob("*.py") if p.stem not in ("__init__", "__main__"))
# Loaded only when `registrum server` or `registrum ui` runs: FastAPI, uvicorn, SQLAlchemy.
LAZY_ALLOWED = {"registrum.server", "registrum.store"}


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [(path, parser)]
    return [
        leaf
        for group in groups
        for name, sub in group.choices.items()
        for leaf in _leaves(sub, (*path, name))
    ]


def _argv_for(parser: argparse.ArgumentParser) -> list[str]:
    """The least the command accepts: its positionals and required options, each filled."""

    def value(action: argparse.Action) -> str:
        if action.choices:
            return str(next(iter(action.choices)))
        return "1" if action.type in (int, float) else "x"

    argv: list[str] = []
    for action in parser._actions:
        if not action.option_strings:
            if action.nargs != "?":
                argv.append(value(action))
        elif action.required:
            argv += [action.option_strings[0], value(action)]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            first = group._group_actions[0]
            argv += [first.option_strings[0], value(first)]
    return argv


LEAVES = _leaves(build_parser())


def test_the_tree_is_walked() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"server", "ui", "sync", "runs list", "models aliases-history", "demo"} <= names
    assert {"webhooks add", "requests cancel", "members remove", "audit anchor"} <= names


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_takes_store(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    store = "sqlite:///somewhere/else.db"
    args = build_parser().parse_args([*path, *_argv_for(parser), "--store", store])
    assert args.store == store
    assert callable(args.handler)
    default = build_parser().parse_args([*path, *_argv_for(parser)])
    assert default.store is None


LISTS_AND_SHOWS = [
    (path, parser)
    for path, parser in LEAVES
    if path[-1] in ("list", "show", "files", "evals", "aliases-history", "deliveries", "diff")
    or path in (("lineage",), ("gc",))
]


@pytest.mark.parametrize(
    ("path", "parser"), LISTS_AND_SHOWS, ids=[" ".join(p) for p, _ in LISTS_AND_SHOWS]
)
def test_every_list_and_show_prints_for_scripts(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for fmt in ("table", "json", "csv"):
        args = build_parser().parse_args([*path, *_argv_for(parser), "--format", fmt])
        assert args.format == fmt
    assert build_parser().parse_args([*path, *_argv_for(parser)]).format == "table"


def test_store_is_declared_once() -> None:
    declared = {
        module: (CLI / f"{module}.py").read_text().count('"--store"')
        for module in [*MODULES, "__init__"]
    }
    assert sum(declared.values()) == 1, declared
    assert declared["_common"] == 1


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, whether inside a function) for each import of `module`."""
    tree = ast.parse((CLI / f"{module}.py").read_text())
    lazy = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(name, id(node) in lazy) for name in [node.module, *names]]
    return found


SHARED = ("_common", "_output")  # what every command module may import


@pytest.mark.parametrize("module", MODULES)
def test_command_modules_import_only_the_common_pieces(module: str) -> None:
    for name, lazy in _imports(module):
        if name == "registrum.cli" or name.startswith("registrum.cli."):
            # `from registrum.cli._common import x` names registrum.cli._common.x too.
            assert any(name.startswith(f"registrum.cli.{m}") for m in SHARED), (
                f"{module} imports {name}"
            )
            assert module not in SHARED, f"{module} imports {name}"
        if lazy and name.startswith("registrum"):
            assert name.split(".")[:2] in [m.split(".") for m in LAZY_ALLOWED], (
                f"{module} imports {name} inside a function: import it at the top"
            )


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import registrum.cli.{module}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_help_loads_neither_the_server_nor_the_store() -> None:
    code = (
        "import sys; from registrum.cli import build_parser; build_parser().format_help();"
        "heavy = ('fastapi', 'uvicorn', 'alembic', 'sqlalchemy', 'numpy', 'torch');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_entry_point_and_python_m_both_reach_main() -> None:
    (script,) = entry_points(group="console_scripts", name="registrum")
    assert script.value == "registrum.cli:main"
    assert script.load() is main
    out = subprocess.run(
        [sys.executable, "-m", "registrum.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("usage: registrum ")
    assert "The `registrum` command." in out.stdout
