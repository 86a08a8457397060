"""Train an XGBoost classifier on a generated data set, tracked and registered by Registrum,
then load the registered model back.

python examples/xgboost_example.py                    # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/xgboost_example.py   # a `registrum server`

Needs the XGBoost extra alone: pip install "registrum[xgboost]".
"""

from __future__ import annotations

import os

import numpy as np
import xgboost as xgb
from registrum_xgboost import RegistrumCallback, load_model

MODEL_NAME = "xgboost-example-classifier"
FEATURES = ["tenure", "monthly_spend", "support_calls", "late_payments", "logins"]


def churn_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Customers and whether they left: a noisy rule over the features, interactions included."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    score = -3.0 * x[:, 0] + 2.0 * x[:, 2] + 3.0 * x[:, 3] * (x[:, 1] > 0) - 1.5 * x[:, 4]
    return x, (score + rng.logistic(size=rows) > 0).astype(np.float32)


def main() -> None:
    x_train, y_train = churn_data(2_000, seed=0)
    x_val, y_val = churn_data(500, seed=1)
    # Named features: the registered version's signature lists them.
    train = xgb.DMatrix(x_train, label=y_train, feature_names=FEATURES)
    val = xgb.DMatrix(x_val, label=y_val, feature_names=FEATURES)
    callback = RegistrumCallback(
        "xgboost-example",
        register_as=MODEL_NAME,
        aliases=["candidate"],
        tags={"example": "xgboost"},
    )
    params = {
        "objective": "binary:logistic",
        "max_depth": 3,
        "learning_rate": 0.1,
        "eval_metric": ["logloss", "auc"],
        "nthread": 1,
    }
    booster = xgb.train(
        params,
        train,
        num_boost_round=200,
        evals=[(train, "train"), (val, "validation")],
        early_stopping_rounds=10,
        verbose_eval=False,
        callbacks=[callback],
    )

    reloaded = load_model(f"{MODEL_NAME}@candidate")
    same = np.array_equal(reloaded.predict(val), booster.predict(val))
    where = os.environ.get("REGISTRUM_URL") or os.environ.get("REGISTRUM_HOME") or "~/.registrum"
    print(
        f"run {callback.run_id}: best iteration {booster.best_iteration}, "
        f"validation AUC {booster.best_score:.3f}"
    )
    print(f"registered {MODEL_NAME}@candidate; reloaded, it predicts the same: {same}")
    print(f"stored in {where}; look with:")
    print(f"  registrum runs show {callback.run_id}")
    print(f"  registrum models show {MODEL_NAME}@candidate")


if __name__ == "__main__":
    main()
