"""`registrum import mlflow`: an MLflow tracking server's history copied into Registrum.

The source is read through MLflow's REST API only (any MLflow server, self-hosted or
managed; no `mlflow` package needed), and the target is written through Registrum's own
MLflow adapter routes (over HTTP for a server, in-process for an embedded store), so imported
history is stored exactly as history the MLflow client logs there. Experiments are matched by
name, runs keep their MLflow ids, logged models and registered versions are matched to what
an earlier import made: a second import copies nothing, and an interrupted one resumes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TextIO

from registrum.errors import InvalidArgument, NotFound, StoreUnavailable, Unauthorized
from registrum.importers._mlflow_database import MlflowDatabase, WrongDatabase
from registrum.importers._mlflow_http import MlflowCallFailed, MlflowHttp
from registrum.importers._mlflow_registry import RegistryCopy
from registrum.importers._mlflow_report import MlflowImport
from registrum.importers._mlflow_runs import (
    HISTORY_WINDOW,
    ExperimentCopy,
    parents_first,
    tags_of,
)
from registrum.importers._mlflow_source import MlflowSource
from registrum.importers._mlflow_target import Target, open_target
from registrum.importers._progress import ProgressBar

__all__ = ["import_mlflow"]

Json = dict[str, Any]


def import_mlflow(
    source: str,
    *,
    experiments: Sequence[str] = (),
    store: str | None = None,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    threads: int = 4,
    retries: int = 3,
    backend_store_uri: str | None = None,
    stream: TextIO | None = None,
) -> MlflowImport:
    """Copies an MLflow tracking server's content into a Registrum store.

    Args:
        source: the MLflow tracking URI, `http(s)://host:port` (a path prefix is kept).
        experiments: names of the experiments to copy; all active ones when empty. Registered
            models are copied with the versions whose source run was copied.
        store: the Registrum store: `http(s)://` server, database URL, or None for
            REGISTRUM_URL or the embedded default. A server is sent REGISTRUM_TOKEN.
        token: the source's token (default MLFLOW_TRACKING_TOKEN), sent as Bearer.
        username: with `password`, Basic auth for the source (default
            MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
        threads: runs copied at once.
        retries: times a refused connection, 429 or 5xx is retried, with backoff.
        backend_store_uri: the source server's own database (its `--backend-store-uri`,
            SQLite or PostgreSQL): metric histories are read from it, several times faster
            than through the server; everything else still comes through the server. Only
            read; a database that is not the server's is refused.
        stream: where progress bars go (default stderr; drawn only on a terminal).

    Returns:
        What was copied, skipped and failed: `report.ok` is False when anything failed, and
        running the same import again resumes there.

    Raises:
        StoreUnavailable: the source or the target cannot be reached, or does not speak
            MLflow's API.
        Unauthorized: the source or the target refused the credentials.
        NotFound: a named experiment is not in the source.
    """
    if not source.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"--from {source!r} is not an MLflow tracking server URL: give http(s)://host:port"
        )
    if threads < 1:
        raise InvalidArgument(f"threads must be at least 1, got {threads}")
    began = time.monotonic()
    http = MlflowHttp(
        source,
        where="source",
        token=token or os.environ.get("MLFLOW_TRACKING_TOKEN"),
        username=username or os.environ.get("MLFLOW_TRACKING_USERNAME"),
        password=password or os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        retries=retries,
        connections=threads * (HISTORY_WINDOW + 1),
    )
    try:
        database = None if backend_store_uri is None else MlflowDatabase(backend_store_uri)
    except BaseException:
        http.close()
        raise
    reader = MlflowSource(http, database)
    try:
        chosen = _choose(reader, experiments)
        target = open_target(store, connections=threads * 2, retries=retries)
        _probe(target)
        report = MlflowImport(f"MLflow at {http.url}", target=target.url)
        try:
            _Import(reader, target, report, threads, stream or sys.stderr).run(
                chosen, everything=not experiments
            )
        finally:
            target.close()
    finally:
        http.close()
        if database is not None:
            database.close()
    report.seconds = time.monotonic() - began
    return report


def _choose(reader: MlflowSource, names: Sequence[str]) -> list[Json]:
    """The experiments to copy: all active ones, or the named ones (every name must exist)."""
    try:
        active = reader.experiments()
    except MlflowCallFailed as exc:
        if exc.status in (401, 403):
            raise Unauthorized(
                f"the MLflow server at {reader.url} refused the import ({exc}): set "
                "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            ) from None
        raise StoreUnavailable(
            f"{reader.url} did not answer as an MLflow tracking server ({exc}); check --from"
        ) from None
    if not names:
        return active
    by_name = {e["name"]: e for e in active}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        raise NotFound(
            f"no active experiment named {', '.join(map(repr, missing))} at {reader.url} "
            f"(its experiments: {known})"
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def _probe(target: Target) -> None:
    """Fails early, and says how to fix it, when the target refuses the import or does not
    speak MLflow's API (every call after would fail the same way)."""
    try:
        target.call("POST", "/experiments/search", {"max_results": 1})
    except MlflowCallFailed as exc:
        target.close()
        if exc.status in (401, 403):
            raise Unauthorized(
                f"the Registrum server at {target.url} refused the import ({exc}): set "
                "REGISTRUM_TOKEN to a token of an editor"
            ) from None
        raise StoreUnavailable(
            f"{target.url} did not answer as a Registrum server with MLflow's API ({exc})"
        ) from None
    except StoreUnavailable:
        target.close()
        raise


class _Import:
    """One import's walk: experiments, their runs (several at once), then the registry."""

    def __init__(
        self,
        reader: MlflowSource,
        target: Target,
        report: MlflowImport,
        threads: int,
        stream: TextIO,
    ) -> None:
        self.reader = reader
        self.target = target
        self.report = report
        self.threads = threads
        self.stream = stream
        self.runs: set[str] = set()
        self.model_ids: dict[str, str] = {}
        self.stopped: StoreUnavailable | WrongDatabase | None = None

    def run(self, experiments: list[Json], *, everything: bool) -> None:
        if everything:
            for gone in self.reader.experiments("DELETED_ONLY"):
                self.report.skip(f"experiment {gone['name']}", "it is deleted in MLflow")
        for experiment in experiments:
            if self.stopped is not None:
                break
            self.guard(f"experiment {experiment['name']}", partial(self.experiment, experiment))
        if self.stopped is None:
            registry = RegistryCopy(
                self.reader,
                self.target,
                self.report,
                self.runs,
                self.model_ids,
                self.report.experiment_ids,
            )
            self.guard("the model registry", registry.copy_all)

    def guard(self, what: str, work: Callable[[], None]) -> None:
        """Runs `work`, recording a failure as the report's; an unreachable end stops the
        import (every later call would fail the same way)."""
        if self.stopped is not None:
            return
        try:
            work()
        except (StoreUnavailable, WrongDatabase) as exc:
            self.stopped = exc
            self.report.fail(what, str(exc))
        except MlflowCallFailed as exc:
            self.report.fail(what, str(exc))
        except Exception as exc:  # an answer of unexpected shape: this item fails, not all
            self.report.fail(what, f"{type(exc).__name__}: {exc}")

    def experiment(self, experiment: Json) -> None:
        name = experiment["name"]
        target_id = self.ensure_experiment(experiment)
        self.report.experiment_ids[experiment["experiment_id"]] = target_id
        self.report.add("projects")
        source_id = experiment["experiment_id"]
        copy = ExperimentCopy(self.reader, self.target, self.report, source_id, target_id, name)
        copy.model_ids = self.model_ids
        copy.load()
        runs = self.reader.runs(source_id)
        deleted = self.reader.runs(source_id, "DELETED_ONLY")
        if deleted:
            self.report.skip(
                f"{len(deleted)} run(s) of experiment {name}", "they are deleted in MLflow"
            )
        with ProgressBar(f"{name}", len(runs), stream=self.stream) as bar:
            for wave in _waves(runs):
                with ThreadPoolExecutor(self.threads) as pool:
                    for _ in pool.map(partial(self.one_run, copy), wave):
                        bar.advance(1, f"{self.report.points:,} points")
        ids = {r["info"]["run_id"] for r in runs}
        for model in copy.logged_models:
            if model["info"].get("source_run_id") not in ids:
                self.guard(
                    f"logged model {model['info']['model_id']}",
                    partial(copy.copy_logged_model, model),
                )

    def one_run(self, copy: ExperimentCopy, run: Json) -> None:
        run_id: str = run["info"]["run_id"]

        def work() -> None:
            state = copy.state(run)
            if state == "complete":
                for model in copy.models_of(run_id):
                    copy.copy_logged_model(model)
                self.report.add("runs_unchanged")
            else:
                copy.copy_run(run, resumed=state == "partial")
            self.runs.add(run_id)

        self.guard(f"run {run_id} of experiment {copy.name}", work)

    def ensure_experiment(self, experiment: Json) -> str:
        """The target experiment of the same name, created (with MLflow's tags) if missing."""
        name = experiment["name"]
        tags = experiment.get("tags", [])
        try:
            there = self.target.call("GET", "/experiments/get-by-name", {"experiment_name": name})[
                "experiment"
            ]
        except MlflowCallFailed as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            made = self.target.call("POST", "/experiments/create", {"name": name, "tags": tags})
            return str(made["experiment_id"])
        target_id = str(there["experiment_id"])
        theirs = {t["key"]: t.get("value") for t in there.get("tags", [])}
        for tag in tags:
            if theirs.get(tag["key"]) != tag.get("value", ""):
                args = {
                    "experiment_id": target_id,
                    "key": tag["key"],
                    "value": tag.get("value", ""),
                }
                self.target.call("POST", "/experiments/set-experiment-tag", args)
        return target_id


def _waves(runs: list[Json]) -> list[list[Json]]:
    """`runs` in waves that can each be copied at once: a nested run is in a later wave than
    its parent."""
    ids = {r["info"]["run_id"] for r in runs}
    depth: dict[str, int] = {}
    for run in parents_first(runs):
        parent = tags_of(run).get("mlflow.parentRunId")
        above = depth.get(parent, -1) if parent is not None and parent in ids else -1
        depth[run["info"]["run_id"]] = above + 1
    waves: list[list[Json]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for run in runs:
        waves[depth[run["info"]["run_id"]]].append(run)
    return waves
