"""Train an XGBoost classifier on scikit-learn's bundled breast-cancer data, tracked and
registered by Registrum.

python examples/xgboost_example.py                    # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/xgboost_example.py   # a `registrum server`

Needs the XGBoost extra and scikit-learn: pip install "registrum[xgboost,sklearn]".
"""

from __future__ import annotations

import os

import numpy as np
import xgboost as xgb
from registrum_xgboost import RegistrumCallback, load_model
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

MODEL_NAME = "xgboost-example-classifier"


def main() -> None:
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)  # shipped with sklearn
    x_train, x_val, y_train, y_val = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    callback = RegistrumCallback(
        "xgboost-example",
        register_as=MODEL_NAME,
        aliases=["candidate"],
        tags={"example": "xgboost"},
    )
    model = xgb.XGBClassifier(
        n_estimators=200,
        max_depth=3,
        learning_rate=0.1,
        eval_metric=["logloss", "auc"],
        early_stopping_rounds=10,
        n_jobs=1,
        callbacks=[callback],
    )
    model.fit(x_train, y_train, eval_set=[(x_train, y_train), (x_val, y_val)], verbose=False)

    reloaded = load_model(f"{MODEL_NAME}@candidate")
    same = np.array_equal(reloaded.predict_proba(x_val), model.predict_proba(x_val))
    where = os.environ.get("REGISTRUM_URL") or os.environ.get("REGISTRUM_HOME") or "~/.registrum"
    print(
        f"run {callback.run_id}: best iteration {model.best_iteration}, "
        f"validation AUC {model.best_score:.3f}"
    )
    print(f"registered {MODEL_NAME}@candidate; reloaded, it predicts the same: {same}")
    print(f"stored in {where}; look with:")
    print(f"  registrum runs show {callback.run_id}")
    print(f"  registrum models show {MODEL_NAME}@candidate")


if __name__ == "__main__":
    main()
