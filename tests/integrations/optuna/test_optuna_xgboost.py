import numpy as np
import pytest

from targets import Target

optuna = pytest.importorskip("optuna", reason="needs optuna: pip install -e .[all]")
xgb = pytest.importorskip("xgboost", reason="needs xgboost: pip install -e .[all]")

import registrum_xgboost  # noqa: E402
from optuna_sweeps import series, sweep_runs  # noqa: E402
from registrum_optuna import RegistrumCallback, trial_run  # noqa: E402

ROUNDS = 8


def test_the_best_booster_of_a_sweep_is_the_registered_one(target: Target) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=240)
    train, valid = xgb.DMatrix(x[:180], label=y[:180]), xgb.DMatrix(x[180:], label=y[180:])
    boosters: dict[int, xgb.Booster] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {
            "max_depth": trial.suggest_int("max_depth", 1, 4),
            "eta": trial.suggest_float("eta", 0.05, 0.5, log=True),
            "nthread": 1,
        }
        with trial_run(trial):
            history: dict = {}
            boosters[trial.number] = xgb.train(
                params,
                train,
                num_boost_round=ROUNDS,
                evals=[(valid, "validation")],
                evals_result=history,
                verbose_eval=False,
                callbacks=[registrum_xgboost.RegistrumCallback(project="p")],
            )
        return float(history["validation"]["rmse"][-1])

    callback = RegistrumCallback(project="p", register_as="booster", store=target.store)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=5, callbacks=[callback])
    callback.finish(study)

    _, trials = sweep_runs(target.reader, "p")
    assert sorted(trials) == list(range(5))
    for trial in study.trials:
        rmse = series(target.reader, trials[trial.number].id, "validation-rmse")
        assert sorted(rmse) == list(range(ROUNDS))
        assert rmse[ROUNDS - 1] == pytest.approx(trial.value)
    best = target.reader.get_model_version("booster@best")
    assert best.flavor == "xgboost" and best.run_id == trials[study.best_trial.number].id
    assert best.metrics == {"value": study.best_value}
    loaded = registrum_xgboost.load_model("booster@best", store=target.store)
    expected = boosters[study.best_trial.number].predict(valid)
    np.testing.assert_array_equal(loaded.predict(valid), expected)
