"""Promotion gates as pure functions: plain data in, results out, no database."""

from __future__ import annotations

from typing import Any

import pytest

from registrum.errors import InvalidArgument
from registrum.store.governance.gates import check_gate, evaluate


def _history(*scores: tuple[int, int, float]) -> dict[str, Any]:
    """A model's evaluation history: (model version, dataset version, accuracy) triples."""
    datasets = {dv for _, dv, _ in scores}
    return {
        "datasets": [
            {"id": 10 + dv, "name": "test", "version": dv, "fingerprint": f"fp{dv}"}
            for dv in sorted(datasets)
        ],
        "evaluations": [
            {"version": mv, "dataset": 10 + dv, "metric": "acc", "value": value}
            for mv, dv, value in scores
        ],
    }


ACC = check_gate({"type": "evaluation", "dataset": "test", "metric": "acc"}, 0)


def test_check_gate_normalises_and_refuses() -> None:
    assert check_gate({"tags": ["validated"]}, 0) == {
        "type": "tags",
        "tags": {"validated": None},
    }
    assert ACC == {
        "type": "evaluation",
        "dataset": "test",
        "fingerprint": None,
        "metric": "acc",
        "direction": "higher",
        "tolerance": None,
    }
    with pytest.raises(InvalidArgument, match=r"gates\[2\]: name the data"):
        check_gate({"type": "evaluation", "metric": "acc"}, 2)
    with pytest.raises(InvalidArgument, match="tolerance must be a finite number"):
        check_gate({"dataset": "test", "tolerance": -1}, 0)
    with pytest.raises(InvalidArgument, match="type 'x' must be"):
        check_gate({"type": "x"}, 0)


def test_tags_gate() -> None:
    gate = check_gate({"tags": {"validated": "true", "reviewed": None}}, 0)
    [ok] = evaluate(
        [gate],
        tags={"validated": "true", "reviewed": "ana"},
        history=None,
        version=3,
        current=None,
    )
    assert ok["passed"] and ok["detail"] == "version 3 has tags reviewed, validated"
    [missing] = evaluate([gate], tags={"validated": "no"}, history=None, version=3, current=None)
    assert not missing["passed"]
    assert missing["detail"] == "version 3 lacks tags validated=true, reviewed"


def test_evaluation_gate_compares_on_the_same_dataset_version() -> None:
    history = _history((1, 1, 0.80), (2, 1, 0.85), (3, 1, 0.70))
    [better] = evaluate([ACC], tags={}, history=history, version=2, current=1)
    assert better["passed"]
    assert better["detail"].startswith("acc on test v1: version 2 0.85 beats version 1 0.8")
    [worse] = evaluate([ACC], tags={}, history=history, version=3, current=1)
    assert not worse["passed"] and "does not beat" in worse["detail"]


def test_evaluation_gate_tolerance_direction_and_missing_data() -> None:
    history = _history((1, 1, 0.80), (2, 1, 0.79), (3, 2, 0.99))
    lenient = check_gate({"dataset": "test", "metric": "acc", "tolerance": 0.02}, 0)
    assert evaluate([lenient], tags={}, history=history, version=2, current=1)[0]["passed"]
    lower = check_gate({"dataset": "test", "metric": "acc", "direction": "lower"}, 0)
    assert evaluate([lower], tags={}, history=history, version=2, current=1)[0]["passed"]
    [unshared] = evaluate([ACC], tags={}, history=history, version=3, current=1)
    assert not unshared["passed"] and "evaluate both on the same data" in unshared["detail"]
    [never] = evaluate([ACC], tags={}, history=history, version=4, current=1)
    assert not never["passed"] and "has no acc on test" in never["detail"]
    [first] = evaluate([ACC], tags={}, history=history, version=2, current=None)
    assert first["passed"] and "no current version to beat" in first["detail"]


def test_evaluation_gates_need_the_history() -> None:
    with pytest.raises(ValueError, match="need the model's evaluation history"):
        evaluate([ACC], tags={}, history=None, version=2, current=1)
