"""MLflow's view of Registrum's registry records: a version as MLflow's `ModelVersion`, a
model as its `RegisteredModel` (with the latest version per stage), and the version tags that
hold what MLflow has and Registrum does not: the stage (`mlflow.stage`), the `source` the
client registered (`mlflow.source`), the logged model (`mlflow.modelId`, when the source does
not name it), `run_link` (`mlflow.runLink`) and a source run this store does not hold
(`mlflow.runId`)."""

from __future__ import annotations

import re
from typing import Any

from registrum.entities import Artifact, ModelVersion, RegisteredModel
from registrum.errors import NotFound
from registrum.server.mlflow import logged_models
from registrum.server.mlflow._wire import millis, tag_list
from registrum.store import Store

STAGE_TAG = "mlflow.stage"
SOURCE_TAG = "mlflow.source"
MODEL_ID_TAG = "mlflow.modelId"
RUN_LINK_TAG = "mlflow.runLink"
RUN_ID_TAG = "mlflow.runId"  # a source run this store does not hold
# Folded into the answer's own fields, so not repeated among its tags.
FIELD_TAGS = {STAGE_TAG, SOURCE_TAG, MODEL_ID_TAG, RUN_LINK_TAG, RUN_ID_TAG}
STAGES = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}
MLMODEL_MAX_BYTES = 1 << 20  # an MLmodel file is a few hundred bytes; larger is not one


def version_json(store: Store, mv: ModelVersion) -> dict[str, Any]:
    """A version as MLflow's `ModelVersion` message."""
    out: dict[str, Any] = {
        "name": mv.model,
        "version": str(mv.version),
        "creation_timestamp": millis(mv.created_at),
        "last_updated_timestamp": millis(mv.updated_at),
        "current_stage": mv.tags.get(STAGE_TAG, "None"),
        "description": mv.description or "",
        "source": mv.tags.get(SOURCE_TAG) or logged_models.download_uri(store, mv.artifact.id),
        "run_id": mv.run_id or mv.tags.get(RUN_ID_TAG, ""),
        "run_link": mv.tags.get(RUN_LINK_TAG, ""),
        "status": "READY",
        "tags": tag_list({k: x for k, x in mv.tags.items() if k not in FIELD_TAGS}),
        "aliases": list(mv.aliases),
    }
    model_id = mv.tags.get(MODEL_ID_TAG) or source_model_id(out["source"])
    if model_id is not None:
        out["model_id"] = model_id
    return out


def source_model_id(source: str) -> str | None:
    """The logged model a `models:/m-<id>` source names."""
    if not source.startswith("models:/m-"):
        return None
    return source.removeprefix("models:/").split("/", 1)[0]


def latest_per_stage(store: Store, name: str) -> dict[str, ModelVersion]:
    """The newest version in each stage (a version without a stage tag is in "None")."""
    latest: dict[str, ModelVersion] = {}
    for stage, mv in store.latest_versions_by_tag(name, STAGE_TAG).items():
        stage = stage or "None"
        if stage not in latest or mv.version > latest[stage].version:
            latest[stage] = mv
    return latest


def model_json(store: Store, model: RegisteredModel) -> dict[str, Any]:
    """A model as MLflow's `RegisteredModel` message, with the latest version per stage."""
    latest = latest_per_stage(store, model.name)
    return {
        "name": model.name,
        "creation_timestamp": millis(model.created_at),
        "last_updated_timestamp": millis(model.updated_at),
        "description": model.description or "",
        "tags": tag_list(model.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in model.aliases.items()],
        "latest_versions": [
            version_json(store, mv) for mv in sorted(latest.values(), key=lambda m: m.version)
        ],
    }


def flavor(store: Store, artifact: Artifact) -> str | None:
    """The model's flavor as its MLmodel file names it (the first besides python_function,
    which every MLflow model also has); None when there is no readable MLmodel."""
    found = [f for f in artifact.files if f.path == "MLmodel"]
    if not found or found[0].size > MLMODEL_MAX_BYTES:
        return None
    try:
        text = b"".join(store.read_blob(found[0].sha256)).decode("utf-8", "replace")
    except NotFound:  # the bytes are not this caller's to read: register without a flavor
        return None
    flavors = _top_keys_under(text, "flavors")
    named = [f for f in flavors if f != "python_function"] or flavors
    return named[0] if named and re.fullmatch(r"[\w.-]{1,64}", named[0]) else None


def _top_keys_under(yaml_text: str, section: str) -> list[str]:
    """The keys one level under a top-level YAML `section:` (MLmodel is plain block YAML)."""
    keys: list[str] = []
    inside = False
    for line in yaml_text.splitlines():
        if line and not line[0].isspace():
            inside = line.rstrip() == f"{section}:"
            continue
        m = re.match(r"^( +)([^\s:#][^:]*):", line)
        if inside and m is not None and len(m.group(1)) == 2:
            keys.append(m.group(2).strip())
    return keys
