"""Tune an XGBoost regressor with Optuna on scikit-learn's diabetes data (bundled, no
download). Every trial is a run under one sweep run; the booster of the best trial is
registered as `optuna-xgboost-example@best`, then loaded back.

python examples/optuna_xgboost_sweep.py                        # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/optuna_xgboost_sweep.py   # a running server
"""

from __future__ import annotations

import numpy as np
import optuna
import xgboost as xgb
from registrum_optuna import RegistrumCallback, trial_run
from registrum_xgboost import RegistrumCallback as XGBoostCallback
from registrum_xgboost import load_model
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import registrum

PROJECT = "optuna-xgboost-example"
MODEL = "optuna-xgboost-example"


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x, y = load_diabetes(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.25, random_state=0)
    train = xgb.DMatrix(x_train, label=y_train)
    valid = xgb.DMatrix(x_valid, label=y_valid)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "max_depth": trial.suggest_int("max_depth", 2, 6),
            "eta": trial.suggest_float("eta", 0.02, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "nthread": 1,
        }
        history: dict[str, dict[str, list[float]]] = {}
        with trial_run(trial):  # the XGBoost callback joins the trial's run
            xgb.train(
                params,
                train,
                num_boost_round=60,
                evals=[(valid, "validation")],
                evals_result=history,
                verbose_eval=False,
                callbacks=[XGBoostCallback(project=PROJECT)],
            )
        return history["validation"]["rmse"][-1]

    sweep = RegistrumCallback(project=PROJECT, register_as=MODEL, alias="best")
    study = optuna.create_study(
        study_name="diabetes-xgboost", sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.optimize(objective, n_trials=12, callbacks=[sweep])
    sweep.finish(study)

    client = registrum.Client()
    version = client.model_version(f"{MODEL}@best")
    print(f"best trial {study.best_trial.number}: validation rmse {study.best_value:.3f}")
    print(f"registered {version.model} version {version.version} as @best (run {version.run_id})")
    booster = load_model(f"{MODEL}@best")
    rmse = float(np.sqrt(np.mean((booster.predict(valid) - y_valid) ** 2)))
    print(f"reloaded, it scores the same: {bool(np.isclose(rmse, study.best_value, rtol=1e-4))}")
    where = client.settings.store or client.settings.home
    print(f"look at it with: registrum runs list {PROJECT}   (store: {where})")
    client.close()


if __name__ == "__main__":
    main()
