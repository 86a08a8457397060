"""`examples/xgboost_example.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import pytest

from targets import Target, run_example

pytest.importorskip("xgboost")


def test_the_xgboost_example_trains_registers_and_reloads(target: Target) -> None:
    out = run_example("xgboost_example.py", target)
    assert "reloaded, it predicts the same: True" in out
    run_id = out.split()[1].rstrip(":")
    run = target.reader.get_run(run_id)
    version = target.reader.get_model_version("xgboost-example-classifier@candidate")
    assert run.status == "finished" and run.project == "xgboost-example"
    assert run.params["early_stopping.rounds"] == 10 and run.params["max_depth"] == 3
    assert run.metrics["validation-auc"].last > 0.9
    assert version.run_id == run_id and version.flavor == "xgboost"
    assert version.metrics["best_score"] > 0.9
    assert [i["name"] for i in version.signature["inputs"]][:2] == ["tenure", "monthly_spend"]
