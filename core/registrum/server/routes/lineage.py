"""Questions across runs: lineage, evaluation history, dataset diffs, code comparison."""

from __future__ import annotations

from fastapi import APIRouter

from registrum.server.deps import StoreDep
from registrum.server.responses import JSON

router = APIRouter(tags=["lineage"])


@router.get("/lineage")
def lineage(store: StoreDep, node: str, direction: str = "both", depth: int = 3) -> JSON:
    """The graph around `node` (`model:NAME/3`, `run:ID`, `dataset:NAME/2`, `code:COMMIT`):
    nodes and edges up to `depth` steps upstream, downstream or both."""
    return JSON(store.lineage(node, direction=direction, depth=depth))


@router.get("/models/{name}/evaluations")
def evaluations(name: str, store: StoreDep) -> JSON:
    """Every version × dataset version × metric: the latest evaluation, with its run."""
    # The record's dict carries NaN and infinities as their JSON markers.
    return JSON(store.evaluations(name))


@router.get("/projects/{project}/datasets/{name}/diff")
def diff_datasets(project: str, name: str, a: str, b: str, store: StoreDep) -> JSON:
    """How two versions of a dataset differ: fingerprint, rows, schema."""
    return JSON(store.diff_datasets(project, name, a, b))


@router.get("/projects/{project}/datasets/{name}/models")
def dataset_models(project: str, name: str, store: StoreDep, version: str | None = None) -> JSON:
    """The model versions trained on each version of a dataset (or on one)."""
    return JSON({"items": store.dataset_models(project, name, version=version)})


@router.get("/code/compare")
def compare_code(a: str, b: str, store: StoreDep) -> JSON:
    """Two runs' code versions side by side."""
    return JSON(store.compare_code(a, b))
