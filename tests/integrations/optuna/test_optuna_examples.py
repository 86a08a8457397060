"""`examples/optuna_xgboost_sweep.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets import Target

pytest.importorskip("optuna")
pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "optuna_xgboost_sweep.py"


def test_the_xgboost_sweep_example_registers_its_best_booster(target: Target) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(target.home)
    if target.store is not None:
        env["REGISTRUM_URL"] = target.store
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "reloaded, it scores the same: True" in out.stdout
    version = target.reader.get_model_version("optuna-xgboost-example@best")
    run = target.reader.get_run(version.run_id)
    sweep = target.reader.get_run(run.parent_id)
    assert f"(run {version.run_id})" in out.stdout and version.flavor == "xgboost"
    assert run.status == "finished" and run.metrics["validation-rmse"].count == 60
    assert sweep.job_type == "sweep" and sweep.metrics["trials_complete"].last == 12
    assert sweep.metrics["best_value"].last == version.metrics["value"]


LIGHTNING_EXAMPLE = EXAMPLE.with_name("optuna_lightning_sweep.py")


def test_the_lightning_sweep_example_registers_its_best_module(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [sys.executable, str(LIGHTNING_EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "8 trials" in out.stdout and "as @best" in out.stdout
    assert "reloaded: " in out.stdout
    from registrum.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'home' / 'registrum.db'}")
    version = store.get_model_version("optuna-lightning-example@best")
    assert version.flavor == "lightning"
    sweep = store.get_run(store.get_run(version.run_id).parent_id)
    assert sweep.metrics["best_value"].last == version.metrics["value"]
    store.close()
