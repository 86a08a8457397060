"""A training while the store is down: XGBoost is untouched and everything arrives later."""

from pathlib import Path

import numpy as np
import pytest

from registrum.client.http import HttpStore
from serving import free_port, server_process
from targets import sync

xgb = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from registrum_xgboost import RegistrumCallback, load_model  # noqa: E402

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def test_the_server_down_for_the_whole_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Data
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.2")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "0.5")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    monkeypatch.delenv("REGISTRUM_MODE", raising=False)
    port = free_port()
    x, y, x_val, y_val = data
    callback = RegistrumCallback(
        "p",
        store=f"http://127.0.0.1:{port}",
        register_as="offline",
        aliases=["candidate"],
        capture_environment=False,
        capture_code=False,
    )
    model = xgb.XGBClassifier(
        n_estimators=4, early_stopping_rounds=2, nthread=1, callbacks=[callback]
    )
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    assert model.get_booster().num_boosted_rounds() > 0
    assert (home / "spool" / callback.run_id).is_dir()

    with server_process(tmp_path / "srv", port=port) as server:
        sync(home)
        reader = HttpStore(server.root)
        run = reader.get_run(callback.run_id)
        logged = reader.metric_history(run.id, "validation_0-logloss")
        datasets = [d.name for d in reader.list_datasets("p")]
        version = reader.get_model_version("offline@candidate")
        reader.close()
        loaded = load_model("offline@candidate", store=server.root)
    assert run.status == "finished" and run.params["num_boost_round"] == 4
    assert list(logged.values) == model.evals_result()["validation_0"]["logloss"]
    assert sorted(datasets) == ["X_train", "X_validation_0", "y_train", "y_validation_0"]
    assert version.run_id == run.id and version.flavor == "xgboost"
    assert version.metrics["best_iteration"] == model.best_iteration
    np.testing.assert_array_equal(loaded.predict_proba(x_val), model.predict_proba(x_val))
    assert not (home / "spool" / run.id).exists()
