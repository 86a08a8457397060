"""Promotion gates as pure functions: a gate checked when a policy is set, and evaluated
against plain data (the candidate's tags, the model's evaluation history), no database.

* `{"type": "evaluation", "dataset": "test", "metric": "acc", "direction": "higher",
  "tolerance": None}` (or `"fingerprint": F` instead of, or as well as, a dataset name): the
  candidate has an evaluation on that data; with a metric, its value there beats the version
  the alias points at now, on the same dataset version (with a tolerance, it may be worse by at
  most that much). Without a metric, any evaluation on that data passes.
* `{"type": "tags", "tags": {"validated": "true", "reviewed": None}}` (or a list of keys): the
  candidate has these tags (None: with any value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from registrum import validation as v
from registrum.errors import InvalidArgument


def check_gate(gate: Any, index: int) -> dict[str, Any]:
    """A gate checked and normalised; an unusable one is an `InvalidArgument` saying why."""
    where = f"gates[{index}]"
    if not isinstance(gate, Mapping):
        raise InvalidArgument(f"{where} must be an object, e.g. {{'type': 'tags', ...}}")
    kind = gate.get("type", "tags" if "tags" in gate else "evaluation")
    if kind == "tags":
        extra = set(gate) - {"type", "tags"}
        tags = gate.get("tags")
        if isinstance(tags, Sequence) and not isinstance(tags, str):
            tags = {v.key(k, "tag key"): None for k in tags}
        if not isinstance(tags, Mapping) or not tags:
            raise InvalidArgument(f"{where}: tags must be a non-empty list of keys or object")
        for k, x in tags.items():
            v.key(k, "tag key")
            if x is not None and not isinstance(x, str):
                raise InvalidArgument(f"{where}: tag {k!r} must map to a string or null")
        if extra:
            raise InvalidArgument(f"{where}: unknown fields {sorted(extra)}")
        return {"type": "tags", "tags": dict(tags)}
    if kind != "evaluation":
        raise InvalidArgument(f"{where}: type {kind!r} must be 'evaluation' or 'tags'")
    extra = set(gate) - {"type", "dataset", "fingerprint", "metric", "direction", "tolerance"}
    if extra:
        raise InvalidArgument(f"{where}: unknown fields {sorted(extra)}")
    dataset, fingerprint = gate.get("dataset"), gate.get("fingerprint")
    if dataset is None and fingerprint is None:
        raise InvalidArgument(f"{where}: name the data: a dataset name, a fingerprint, or both")
    if dataset is not None:
        dataset = v.name(dataset, "dataset name")
    if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
        raise InvalidArgument(f"{where}: fingerprint must be a non-empty string")
    metric = gate.get("metric")
    if metric is not None:
        v.key(metric, "metric name")
    direction = gate.get("direction", "higher")
    if direction not in ("higher", "lower"):
        raise InvalidArgument(f"{where}: direction must be 'higher' or 'lower' (is better)")
    tolerance = gate.get("tolerance")
    if tolerance is not None:
        tolerance = v.number(tolerance, "tolerance")
        if not math.isfinite(tolerance) or tolerance < 0:
            raise InvalidArgument(f"{where}: tolerance must be a finite number >= 0")
    return {
        "type": "evaluation",
        "dataset": dataset,
        "fingerprint": fingerprint,
        "metric": metric,
        "direction": direction,
        "tolerance": tolerance,
    }


def tags_gate(gate: Mapping[str, Any], tags: Mapping[str, str], version: int) -> tuple[bool, str]:
    missing = [
        k if want is None else f"{k}={want}"
        for k, want in gate["tags"].items()
        if k not in tags or (want is not None and tags[k] != want)
    ]
    if missing:
        return False, f"version {version} lacks tags {', '.join(missing)}"
    return True, f"version {version} has tags {', '.join(sorted(gate['tags']))}"


def evaluation_gate(
    gate: Mapping[str, Any], history: Mapping[str, Any], version: int, current: int | None
) -> tuple[bool, str]:
    datasets = {
        d["id"]: d
        for d in history["datasets"]
        if (gate["dataset"] is None or d["name"] == gate["dataset"])
        and (gate["fingerprint"] is None or d["fingerprint"] == gate["fingerprint"])
    }
    data = gate["dataset"] or f"fingerprint {gate['fingerprint']}"
    metric = gate["metric"]

    def values(of: int) -> dict[str, float]:
        return {
            c["dataset"]: c["value"]
            for c in history["evaluations"]
            if c["version"] == of
            and c["dataset"] in datasets
            and (metric is None or c["metric"] == metric)
            and c["value"] is not None
            and not math.isnan(c["value"])
        }

    mine = values(version)
    what = f"{metric} on {data}" if metric else f"an evaluation on {data}"
    if not mine:
        return False, f"version {version} has no {what}: evaluate it (use_model, use_dataset)"
    if metric is None:
        return True, f"version {version} has {what}"
    if current is None or current == version:
        return True, f"version {version} has {what}; no current version to beat"
    theirs = values(current)
    shared = sorted(set(mine) & set(theirs), key=lambda d: datasets[d]["version"])
    if not shared:
        return False, (
            f"version {current} (current) has no {metric} on the dataset versions version "
            f"{version} was evaluated on ({data}): evaluate both on the same data"
        )
    on = shared[-1]
    a, b = mine[on], theirs[on]
    sign = 1.0 if gate["direction"] == "higher" else -1.0
    tolerance = gate["tolerance"]
    better = sign * (a - b) > 0
    passed = better if tolerance is None else sign * (a - b) >= -tolerance
    where = f"{datasets[on]['name']} v{datasets[on]['version']}"
    verdict = "beats" if better else "does not beat"
    allowance = "" if tolerance is None else f" (tolerance {tolerance:g})"
    return passed, (
        f"{metric} on {where}: version {version} {a:g} {verdict} version {current} "
        f"{b:g}{allowance}, {gate['direction']} is better"
    )


def evaluate(
    gates: Sequence[Mapping[str, Any]],
    *,
    tags: Mapping[str, str],
    history: Mapping[str, Any] | None,
    version: int,
    current: int | None,
) -> list[dict[str, Any]]:
    """Each gate with `passed` and a `detail` that says why, for candidate `version` (with
    `tags`) against `current`, the version the alias points at now (None: none). `history`
    is the model's evaluations (`Store.evaluations`), needed when an evaluation gate is."""
    out = []
    for gate in gates:
        if gate["type"] == "tags":
            passed, detail = tags_gate(gate, tags, version)
        else:
            if history is None:
                raise ValueError("evaluation gates need the model's evaluation history")
            passed, detail = evaluation_gate(gate, history, version, current)
        out.append({"gate": gate, "passed": passed, "detail": detail})
    return out
