"""Copying one MLflow experiment's runs: each run keeps its MLflow id, params, tags (parent,
name, user, note), status and times, every metric point, its artifacts, inputs, and the
logged models it produced.

A run is created RUNNING and receives its final status and end time last, so a run whose
status and end time already match the source is complete and is left alone. A run an earlier
import stopped inside is completed: it is sent only the metric points it lacks and the
artifact files it lacks (or holds with another size); params and tags are set to the same
values again. A retried request is harmless too: the same history is always cut into the same
batches, and the adapter stores an identical batch once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from registrum.importers._mlflow_http import MlflowCallFailed
from registrum.importers._mlflow_report import MlflowImport
from registrum.importers._mlflow_source import (
    MlflowSource,
    history,
    pages,
    quoted,
    walk_artifacts,
)
from registrum.importers._mlflow_target import Target

Json = dict[str, Any]

BATCH_POINTS = 1000  # MLflow's log-batch limit
BATCH_PARAMS = 100
BATCH_TAGS = 100
PARAMS_PER_MODEL_CREATE = 100
HISTORY_WINDOW = 4  # metric keys of one run read at once


def artifact_path(uri: str) -> str | None:
    """The proxied artifact path of an `mlflow-artifacts:` URI (None for any other URI)."""
    if not uri.startswith("mlflow-artifacts:"):
        return None
    rest = uri.removeprefix("mlflow-artifacts:")
    if rest.startswith("//"):  # mlflow-artifacts://host:port/path
        rest = rest[2:].partition("/")[2]
    return rest.strip("/")


def metric_batches(points: Iterable[Json]) -> Iterator[list[Json]]:
    """`points` cut into log-batch requests of 1000: the same history always gives the same
    batches, so a batch sent again by a resumed import is one the target already holds."""
    batch: list[Json] = []
    for p in points:
        batch.append(
            {
                "key": p["key"],
                "value": p["value"],
                "timestamp": p["timestamp"],
                "step": p.get("step", 0),
            }
        )
        if len(batch) == BATCH_POINTS:
            yield batch
            batch = []
    if batch:
        yield batch


def parents_first(runs: Sequence[Json]) -> list[Json]:
    """`runs` ordered so that a nested run comes after its parent (the target links a child
    to its parent when it is created)."""
    by_id = {r["info"]["run_id"]: r for r in runs}
    done: set[str] = set()
    ordered: list[Json] = []

    def visit(run: Json, depth: int = 0) -> None:
        run_id = run["info"]["run_id"]
        if run_id in done:
            return
        done.add(run_id)
        parent = tags_of(run).get("mlflow.parentRunId")
        if parent in by_id and depth < 100:  # deeper nesting is not MLflow's use
            visit(by_id[parent], depth + 1)
        ordered.append(run)

    for run in runs:
        visit(run)
    return ordered


def _point(p: Json) -> tuple[int, int, str]:
    """A point as both ends answer it (NaN as the string "NaN", so it equals itself)."""
    return int(p.get("step", 0)), int(p["timestamp"]), str(p["value"])


def tags_of(run: Json) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}


@dataclass
class ExperimentCopy:
    """Copies the runs and logged models of one source experiment into one target experiment."""

    source: MlflowSource
    target: Target
    report: MlflowImport
    source_id: str
    target_id: str
    name: str  # the experiment's
    logged_models: list[Json] = field(default_factory=list)
    model_ids: dict[str, str] = field(default_factory=dict)  # MLflow model id → target's
    existing: dict[str, Json] = field(default_factory=dict)  # the target's runs, by id
    _by_run: dict[str | None, list[Json]] = field(default_factory=dict)

    def models_of(self, run_id: str | None) -> list[Json]:
        return self._by_run.get(run_id, [])

    def load(self) -> None:
        """Reads the source's logged models and the target's runs of this experiment once
        (one paged search each, not one call per run)."""
        self.logged_models = self.source.logged_models(self.source_id)
        self._by_run.clear()
        for model in self.logged_models:
            self._by_run.setdefault(model["info"].get("source_run_id"), []).append(model)
        args = {"experiment_ids": [self.target_id], "run_view_type": "ALL", "max_results": 1000}
        for run in pages(self.target, "POST", "/runs/search", args, "runs"):
            self.existing[run["info"]["run_id"]] = run["info"]

    # -- runs ---------------------------------------------------------------------------

    def state(self, run: Json) -> str:
        """`new` (not in the target), `partial` (an earlier import stopped inside it), or
        `complete`: its final status and end time, written last, match the source's. A run
        still RUNNING at the source is never complete."""
        info = run["info"]
        there = self.existing.get(info["run_id"])
        if there is None:
            return "new"
        done = (
            info.get("status", "RUNNING") != "RUNNING"
            and there.get("status") == info.get("status")
            and int(there.get("end_time") or 0) == int(info.get("end_time") or 0)
        )
        return "complete" if done else "partial"

    def create_run(self, run: Json) -> str:
        """Creates `run` in the target (or finds it, when an earlier import did) with its
        MLflow id; answers the target's artifact path of the run."""
        info = run["info"]
        tags = run.get("data", {}).get("tags", [])
        args: Json = {
            "experiment_id": self.target_id,
            "run_id": info["run_id"],
            "user_id": info.get("user_id", ""),
            "start_time": info.get("start_time"),
            "tags": tags,
        }
        if info.get("run_name"):
            args["run_name"] = info["run_name"]
        made = self.target.call("POST", "/runs/create", args)["run"]["info"]
        path = artifact_path(made.get("artifact_uri", ""))
        if path is None:
            raise MlflowCallFailed(
                "target", "INVALID_STATE", f"run {info['run_id']} has no proxied artifact URI", 400
            )
        return path

    def copy_run(self, run: Json, *, resumed: bool = False) -> None:
        """Copies everything of `run` not yet in the target, then sets its status; `resumed`
        when an earlier import stopped inside it."""
        info = run["info"]
        run_id = info["run_id"]
        target_root = self.create_run(run)
        self.copy_params_and_tags(run, resumed=resumed)
        self.copy_metrics(run, resumed=resumed)
        for model in self.models_of(run_id):
            self.copy_logged_model(model)
        self.copy_outputs(run)
        self.copy_inputs(run)
        self.copy_artifacts(
            info.get("artifact_uri", ""), target_root, f"run {run_id}", fresh=not resumed
        )
        update: Json = {"run_id": run_id, "status": info.get("status", "FINISHED")}
        if info.get("end_time") is not None:
            update["end_time"] = info["end_time"]
        self.target.call("POST", "/runs/update", update)
        self.report.add("runs")

    def copy_params_and_tags(self, run: Json, *, resumed: bool) -> None:
        """Logs the params, and the tags again for a resumed run (a new run got its tags
        when it was created)."""
        data = run.get("data", {})
        params = data.get("params", [])
        tags = data.get("tags", []) if resumed else []
        for start in range(0, max(len(params), len(tags)), BATCH_PARAMS):
            batch: Json = {"run_id": run["info"]["run_id"], "metrics": []}
            batch["params"] = params[start : start + BATCH_PARAMS]
            batch["tags"] = tags[start : start + BATCH_TAGS]
            self.target.call("POST", "/runs/log-batch", batch)

    def copy_metrics(self, run: Json, *, resumed: bool) -> None:
        """Sends every point of every metric, in batches of 1000 across keys (a run of many
        short series takes few requests). A resumed run is sent only the points the target
        lacks, so a run that grew at the source since gets no point twice."""
        run_id = run["info"]["run_id"]
        keys = sorted({m["key"] for m in run.get("data", {}).get("metrics", [])})
        points: Iterable[Json] = (
            itertools.chain.from_iterable(self.missing(run_id, k) for k in keys)
            if resumed
            else self.source.histories(run_id, keys, window=HISTORY_WINDOW)
        )
        for batch in metric_batches(points):
            self.target.call("POST", "/runs/log-batch", {"run_id": run_id, "metrics": batch})
            self.report.add("points", len(batch))

    def missing(self, run_id: str, key: str) -> Iterator[Json]:
        """The source's points of one metric that the target does not hold."""
        try:
            held = {_point(p) for p in history(self.target, run_id, key)}
        except MlflowCallFailed as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            held = set()
        return (p for p in self.source.history(run_id, key) if _point(p) not in held)

    def copy_outputs(self, run: Json) -> None:
        outputs = run.get("outputs", {}).get("model_outputs", [])
        models = [
            {"model_id": self.model_ids[o["model_id"]], "step": o.get("step", 0)}
            for o in outputs
            if o.get("model_id") in self.model_ids
        ]
        if models:
            self.target.call(
                "POST", "/runs/outputs", {"run_id": run["info"]["run_id"], "models": models}
            )

    def copy_inputs(self, run: Json) -> None:
        datasets = run.get("inputs", {}).get("dataset_inputs", [])
        if datasets:
            self.target.call(
                "POST", "/runs/log-inputs", {"run_id": run["info"]["run_id"], "datasets": datasets}
            )

    # -- artifacts ----------------------------------------------------------------------

    def target_files(self, root: str) -> dict[str, int]:
        """The files the target already holds under `root`, with their sizes."""
        return dict(walk_artifacts(self.target.list_artifacts, root))

    def copy_artifacts(
        self, source_uri: str, target_root: str, owner: str, *, fresh: bool = False
    ) -> None:
        """Streams every file under `source_uri` the target lacks (or holds with another
        size) to the same relative path under `target_root`; `fresh` when the target's
        owner was just made, so it holds nothing yet."""
        source_root = artifact_path(source_uri)
        if source_root is None:
            if source_uri:
                self.report.skip(
                    f"the artifacts of {owner}",
                    f"they are stored at {source_uri}, which the MLflow server does not "
                    "serve (an MLflow server started with --artifacts-destination serves them)",
                )
            return
        there = {} if fresh else self.target_files(target_root)
        for rel, size in self.source.artifact_files(source_root):
            if there.get(rel) == size:
                continue
            sent = 0

            def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
                nonlocal sent
                for chunk in chunks:
                    sent += len(chunk)
                    yield chunk

            self.target.write_artifact(
                f"{target_root}/{rel}",
                counted(self.source.http.read_artifact(f"{source_root}/{rel}")),
            )
            if sent != size:
                raise MlflowCallFailed(
                    "source", "INCOMPLETE_READ", f"{owner}: {rel} gave {sent} of {size} bytes", 200
                )
            self.report.add("artifacts")
            self.report.add("bytes", sent)

    # -- logged models ------------------------------------------------------------------

    def copy_logged_model(self, model: Json) -> None:
        """Copies one READY logged model (its files, params and tags) and records its
        target id; a model found READY in the target is only mapped."""
        info = model["info"]
        source_id = info["model_id"]
        if source_id in self.model_ids:
            return
        if info.get("status") != "LOGGED_MODEL_READY":
            self.report.skip(
                f"logged model {info.get('name')} ({source_id})",
                f"its status is {info.get('status')}: its files were never completed in MLflow",
            )
            return
        found = self.find_logged_model(model)
        if found is not None and found["info"].get("status") == "LOGGED_MODEL_READY":
            self.model_ids[source_id] = found["info"]["model_id"]
            return
        made = found or self.create_logged_model(model)
        target_id = made["info"]["model_id"]
        target_root = artifact_path(made["info"].get("artifact_uri", ""))
        if target_root is None:
            raise MlflowCallFailed(
                "target", "INVALID_STATE", f"logged model {target_id} has no artifact URI", 400
            )
        self.copy_artifacts(
            info.get("artifact_uri", ""), target_root, f"logged model {source_id}", fresh=not found
        )
        self.target.call(
            "PATCH",
            f"/logged-models/{target_id}",
            {"model_id": target_id, "status": "LOGGED_MODEL_READY"},
        )
        self.model_ids[source_id] = target_id
        self.report.add("logged_models")

    def find_logged_model(self, model: Json) -> Json | None:
        """The target's copy of `model` from an earlier import: the logged model of the same
        name and source run, in the same place among that run's models of that name."""
        info = model["info"]
        args = {
            "experiment_ids": [self.target_id],
            "filter": f"name = {quoted(info['name'])}",
            "max_results": 100,
        }
        answer = self.target.call("POST", "/logged-models/search", args)
        run_id = info.get("source_run_id")
        theirs = sorted(
            (m for m in answer.get("models", []) if m["info"].get("source_run_id") == run_id),
            key=lambda m: int(m["info"].get("creation_timestamp_ms") or 0),
        )
        ours = sorted(
            (m for m in self.models_of(run_id) if m["info"].get("name") == info["name"]),
            key=lambda m: int(m["info"].get("creation_timestamp_ms") or 0),
        )
        place = [m["info"]["model_id"] for m in ours].index(info["model_id"])
        return theirs[place] if place < len(theirs) else None

    def create_logged_model(self, model: Json) -> Json:
        info = model["info"]
        params = model.get("data", {}).get("params", [])
        args: Json = {
            "experiment_id": self.target_id,
            "name": info["name"],
            "tags": info.get("tags", []),
            "params": params[:PARAMS_PER_MODEL_CREATE],
        }
        if info.get("source_run_id"):
            args["source_run_id"] = info["source_run_id"]
        if info.get("model_type"):
            args["model_type"] = info["model_type"]
        made: Json = self.target.call("POST", "/logged-models", args)["model"]
        rest = params[PARAMS_PER_MODEL_CREATE:]
        model_id = made["info"]["model_id"]
        for start in range(0, len(rest), PARAMS_PER_MODEL_CREATE):
            chunk = rest[start : start + PARAMS_PER_MODEL_CREATE]
            self.target.call(
                "POST", f"/logged-models/{model_id}/params", {"model_id": model_id, "params": chunk}
            )
        return made
