"""Copying MLflow's model registry: registered models with their descriptions and tags,
versions linked to their (imported) source runs and logged models, so lineage holds, with
their descriptions, tags and stages, then the aliases.

A version is matched to the target's by name, source run and source: the k-th MLflow version
of a model with a given (run, source) is the k-th such version in the target. So a second
import finds every version and creates none, and a resumed one creates only the missing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from registrum.errors import StoreUnavailable
from registrum.importers._mlflow_http import MlflowCallFailed
from registrum.importers._mlflow_report import MlflowImport
from registrum.importers._mlflow_source import MlflowSource, quoted
from registrum.importers._mlflow_target import Target

Json = dict[str, Any]

NO_STAGE = ("", "None")


def tag_map(tags: list[Json] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags or []}


@dataclass
class RegistryCopy:
    """Copies the registry; `runs` is the set of run ids this import copied (a version whose
    run was not imported is left out), `model_ids` maps MLflow logged-model ids to the
    target's, `experiment_ids` MLflow experiment ids to the target's."""

    source: MlflowSource
    target: Target
    report: MlflowImport
    runs: set[str]
    model_ids: dict[str, str]
    experiment_ids: dict[str, str]

    def copy_all(self) -> None:
        for model in self.source.registered_models():
            name = model["name"]
            if tag_map(model.get("tags")).get("mlflow.prompt.is_prompt") == "true":
                self.report.skip(f"registered model {name}", "it is an MLflow prompt")
                continue
            try:
                self.copy_model(model)
            except StoreUnavailable:
                raise  # every later call would fail the same way
            except MlflowCallFailed as exc:
                self.report.fail(f"registered model {name}", str(exc))
            except Exception as exc:  # an answer of unexpected shape: this model fails, not all
                self.report.fail(f"registered model {name}", f"{type(exc).__name__}: {exc}")

    def copy_model(self, model: Json) -> None:
        name = model["name"]
        versions = self.source.model_versions(name)
        wanted = [v for v in versions if v.get("run_id") in self.runs]
        if versions and not wanted:
            self.report.skip(
                f"registered model {name}",
                f"none of its {len(versions)} version(s) comes from a run this import copied "
                "(their experiments were not selected, the runs are deleted in MLflow, or they "
                "failed above)",
            )
            return
        for v in versions:
            if v.get("run_id") not in self.runs:
                why = (
                    f"its source run {v['run_id']} was not copied (its experiment was not "
                    "selected, the run is deleted in MLflow, or it failed above)"
                    if v.get("run_id")
                    else "it has no source run"
                )
                self.report.skip(f"version {v['version']} of registered model {name}", why)
        self.ensure_model(model)
        numbers: dict[str, str] = {}
        existing = self.target_versions(name)
        for version in wanted:
            made = self.copy_version(version, existing)
            if made is not None:
                numbers[str(version["version"])] = str(made["version"])
        self.copy_aliases(model, numbers)

    def ensure_model(self, model: Json) -> None:
        """Creates the registered model, or brings an existing one's description and tags to
        MLflow's."""
        name = model["name"]
        try:
            there = self.target.call("GET", "/registered-models/get", {"name": name})[
                "registered_model"
            ]
        except MlflowCallFailed as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            args: Json = {"name": name, "tags": model.get("tags", [])}
            if model.get("description"):
                args["description"] = model["description"]
            self.target.call("POST", "/registered-models/create", args)
            self.report.add("models")
            return
        if (model.get("description") or "") != (there.get("description") or ""):
            self.target.call(
                "PATCH",
                "/registered-models/update",
                {"name": name, "description": model.get("description", "")},
            )
        theirs = tag_map(there.get("tags"))
        for key, value in tag_map(model.get("tags")).items():
            if theirs.get(key) != value:
                self.target.call(
                    "POST", "/registered-models/set-tag", {"name": name, "key": key, "value": value}
                )

    def target_versions(self, name: str) -> dict[tuple[str, str], list[Json]]:
        """The target's versions of `name` by (run id, source), oldest first."""
        args = {"filter": f"name={quoted(name)}", "max_results": 10_000}
        found: list[Json] = []
        token = None
        while True:
            page = self.target.call(
                "GET", "/model-versions/search", {**args, "page_token": token} if token else args
            )
            found += page.get("model_versions", [])
            token = page.get("next_page_token") or None
            if token is None:
                break
        by_key: dict[tuple[str, str], list[Json]] = defaultdict(list)
        for v in sorted(found, key=lambda v: int(v["version"])):
            by_key[(v.get("run_id") or "", v.get("source") or "")].append(v)
        return by_key

    def source_uri(self, version: Json) -> str | None:
        """The version's source as the target knows it: logged-model ids and experiment ids
        in URIs are the target's; None when the target cannot resolve it."""
        source = str(version.get("source") or "")
        if source.startswith("models:/m-"):
            mapped = self.model_ids.get(source.removeprefix("models:/"))
            return None if mapped is None else f"models:/{mapped}"
        if source.startswith("runs:/"):
            return source
        if source.startswith("mlflow-artifacts:"):
            rest = source.removeprefix("mlflow-artifacts:").lstrip("/")
            experiment, _, path = rest.partition("/")
            if path.startswith("models/"):
                model_id = path.split("/")[1]
                mapped = self.model_ids.get(model_id)
                return None if mapped is None else f"models:/{mapped}"
            target = self.experiment_ids.get(experiment)
            return None if target is None else f"mlflow-artifacts:/{target}/{path}"
        return None

    def copy_version(
        self, version: Json, existing: dict[tuple[str, str], list[Json]]
    ) -> Json | None:
        """Finds or creates one version, then brings its description, tags and stage to
        MLflow's; answers the target's version (None when it cannot be copied)."""
        name, number = version["name"], version["version"]
        source = self.source_uri(version)
        if source is None:
            self.report.skip(
                f"version {number} of registered model {name}",
                f"its source {version.get('source')} is not a logged model, run or artifact "
                "this import copied",
            )
            return None
        run_id = version.get("run_id") or ""
        matches = existing.get((run_id, source), [])
        if matches:
            there = matches.pop(0)
        else:
            args: Json = {
                "name": name,
                "source": source,
                "run_id": run_id,
                "tags": version.get("tags", []),
            }
            if version.get("description"):
                args["description"] = version["description"]
            if source.startswith("models:/m-"):
                args["model_id"] = source.removeprefix("models:/")
            there = self.target.call("POST", "/model-versions/create", args)["model_version"]
            self.report.add("versions")
            if str(there["version"]) != str(number):
                self.report.renumbered.append(
                    f"{name}: MLflow {number} → Registrum {there['version']}"
                )
        self.align_version(version, there)
        return there

    def align_version(self, version: Json, there: Json) -> None:
        name, number = there["name"], there["version"]
        key = {"name": name, "version": str(number)}
        if (version.get("description") or "") != (there.get("description") or ""):
            self.target.call(
                "PATCH",
                "/model-versions/update",
                {**key, "description": version.get("description", "")},
            )
        theirs = tag_map(there.get("tags"))
        for tag, value in tag_map(version.get("tags")).items():
            if theirs.get(tag) != value:
                self.target.call(
                    "POST", "/model-versions/set-tag", {**key, "key": tag, "value": value}
                )
        stage = version.get("current_stage") or "None"
        if stage not in NO_STAGE and stage != there.get("current_stage"):
            self.target.call(
                "POST",
                "/model-versions/transition-stage",
                {**key, "stage": stage, "archive_existing_versions": False},
            )

    def copy_aliases(self, model: Json, numbers: dict[str, str]) -> None:
        name = model["name"]
        there = self.target.call("GET", "/registered-models/get", {"name": name})[
            "registered_model"
        ]
        theirs = {a["alias"]: str(a["version"]) for a in there.get("aliases", [])}
        for alias in model.get("aliases", []):
            version = numbers.get(str(alias["version"]))
            if version is None:
                self.report.skip(
                    f"alias {alias['alias']} of registered model {name}",
                    f"its version {alias['version']} was not copied",
                )
                continue
            if theirs.get(alias["alias"]) != version:
                args = {"name": name, "alias": alias["alias"], "version": version}
                self.target.call("POST", "/registered-models/alias", args)
                self.report.add("aliases")
