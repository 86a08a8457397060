"""`examples/sklearn_example.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import pytest

from targets import Target, run_example

pytest.importorskip("sklearn")
pytest.importorskip("skops")


def test_the_sklearn_example_tunes_registers_and_reloads(target: Target) -> None:
    out = run_example("sklearn_example.py", target)
    assert "reloaded, it predicts the same: True" in out
    run_id = out.split()[1].rstrip(":")
    run = target.reader.get_run(run_id)
    version = target.reader.get_model_version("sklearn-example-classifier@candidate")
    candidates = target.reader.search_runs("sklearn-example", filter=f"parent_id = '{run_id}'")
    assert run.status == "finished" and run.job_type == "sweep"
    assert run.metrics["best_score"].last > 0.95 and run.metrics["eval_accuracy"].last > 0.9
    assert len(candidates.items) == 4
    assert version.run_id == run_id and version.flavor == "sklearn"
    assert version.signature["inputs"] == [{"name": None, "shape": [None, 30], "dtype": "float64"}]
