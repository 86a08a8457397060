"""The Optuna sweep examples run as users run them: embedded, or against REGISTRUM_URL."""

from pathlib import Path

import pytest

from targets import Target, run_example

pytest.importorskip("optuna")
pytest.importorskip("xgboost")
pytest.importorskip("sklearn")


def test_the_xgboost_sweep_example_registers_its_best_booster(target: Target) -> None:
    out = run_example("optuna_xgboost_sweep.py", target)
    assert "reloaded, it scores the same: True" in out
    version = target.reader.get_model_version("optuna-xgboost-example@best")
    run = target.reader.get_run(version.run_id)
    sweep = target.reader.get_run(run.parent_id)
    assert f"(run {version.run_id})" in out and version.flavor == "xgboost"
    assert run.status == "finished" and run.metrics["validation-rmse"].count == 60
    assert sweep.job_type == "sweep" and sweep.metrics["trials_complete"].last == 12
    assert sweep.metrics["best_value"].last == version.metrics["value"]


def test_the_lightning_sweep_example_registers_its_best_module(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    out = run_example("optuna_lightning_sweep.py", Target(None, None, tmp_path / "home"))
    assert "8 trials" in out and "as @best" in out
    assert "reloaded: " in out
    from registrum.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'home' / 'registrum.db'}")
    version = store.get_model_version("optuna-lightning-example@best")
    assert version.flavor == "lightning"
    sweep = store.get_run(store.get_run(version.run_id).parent_id)
    assert sweep.metrics["best_value"].last == version.metrics["value"]
    store.close()
