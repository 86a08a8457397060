"""`registrum import`: other trackers' history copied into a store (`neptune`, `mlflow`).

Each subcommand prints the importer's report and exits 1 when anything failed; running it
again resumes where it stopped and copies nothing twice.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from registrum import importers
from registrum.cli._common import add_store

if TYPE_CHECKING:
    from registrum.importers._progress import ImportReport


def _finish(report: ImportReport) -> int:
    print(report.render())
    return report.exit_code()


def _neptune(args: argparse.Namespace) -> int:
    report = importers.import_neptune(
        args.data_path,
        args.files_path,
        store=args.store,
        projects=args.project or None,
        stream=sys.stderr,
    )
    return _finish(report)


def _mlflow(args: argparse.Namespace) -> int:
    report = importers.import_mlflow(
        args.source,
        store=args.store,
        experiments=args.experiment,
        threads=args.threads,
        backend_store_uri=args.backend_store_uri,
        stream=sys.stderr,
    )
    return _finish(report)


def add_commands(commands: Any) -> None:
    """Adds `import neptune` and `import mlflow` to the `registrum` command."""
    group = commands.add_parser("import", help="copy another tracker's history into the store")
    sources = group.add_subparsers(dest="source_kind", required=True)

    neptune = sources.add_parser(
        "neptune",
        help="load a neptune-exporter export (Parquet parts and files)",
        description="Loads what neptune-exporter wrote: projects, runs (names, forks, "
        "owners, times, status), typed params, metrics with their exact decimal steps, "
        "string and histogram series as media, files as artifacts, models and versions. "
        "Running it again copies nothing twice and resumes an interrupted import.",
    )
    add_store(neptune)
    neptune.add_argument(
        "--data-path", required=True, help="the folder neptune-exporter wrote with --data-path"
    )
    neptune.add_argument(
        "--files-path", required=True, help="the folder neptune-exporter wrote with --files-path"
    )
    neptune.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="NAME",
        help="only this Neptune project (workspace/project); repeat for several",
    )
    neptune.set_defaults(handler=_neptune)

    mlflow = sources.add_parser(
        "mlflow",
        help="copy an MLflow tracking server's experiments, runs and models",
        description="Copies through MLflow's REST API (MLFLOW_TRACKING_TOKEN, or "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, authenticate to it): "
        "experiments, runs with every metric point, artifacts, logged models, registered "
        "models with versions, aliases, tags and stages. Running it again copies nothing "
        "twice and resumes an interrupted import.",
    )
    add_store(mlflow)
    mlflow.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="the MLflow server"
    )
    mlflow.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="only this experiment; repeat for several",
    )
    mlflow.add_argument(
        "--threads", type=int, default=4, metavar="N", help="runs copied at once (default 4)"
    )
    mlflow.add_argument(
        "--backend-store-uri",
        metavar="URI",
        help="the MLflow server's own database (its --backend-store-uri, SQLite or "
        "PostgreSQL): metric histories are read from it, several times faster; only read",
    )
    mlflow.set_defaults(handler=_mlflow)
