"""Tune a scikit-learn pipeline on the breast cancer data set (it ships with scikit-learn),
tracked and registered by Registrum, then load the registered model back.

python examples/sklearn_example.py                    # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/sklearn_example.py   # a `registrum server`

Needs the scikit-learn extra alone: pip install "registrum[sklearn]".
"""

from __future__ import annotations

import os

import numpy as np
from registrum_sklearn import TrackedEstimator, load_model
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

PROJECT = "sklearn-example"
MODEL_NAME = "sklearn-example-classifier"


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True)  # numpy arrays: the extra alone, no pandas
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(
        pipeline,
        {"clf__C": [0.01, 0.1, 1.0, 10.0]},
        scoring={"accuracy": "accuracy", "roc_auc": "roc_auc"},
        refit="roc_auc",
        cv=5,
    )
    tracked = TrackedEstimator(
        search,
        project=PROJECT,
        register_as=MODEL_NAME,
        aliases=["candidate"],
        eval_set=(X_test, y_test),
        tags={"example": "sklearn"},
    )
    tracked.fit(X_train, y_train)

    reloaded = load_model(f"{MODEL_NAME}@candidate")
    same = np.array_equal(reloaded.predict_proba(X_test), tracked.predict_proba(X_test))
    where = os.environ.get("REGISTRUM_URL") or os.environ.get("REGISTRUM_HOME") or "~/.registrum"
    fitted = tracked.estimator_
    print(
        f"run {tracked.run_id_}: best C {fitted.best_params_['clf__C']}, "
        f"cv roc_auc {fitted.best_score_:.3f}, test roc_auc {tracked.score(X_test, y_test):.3f}"
    )
    print(f"registered {MODEL_NAME}@candidate; reloaded, it predicts the same: {same}")
    print(f"stored in {where}; look with:")
    print(f"  registrum runs show {tracked.run_id_}")
    print(f"  registrum runs list {PROJECT} --filter \"parent_id = '{tracked.run_id_}'\"")
    print(f"  registrum models show {MODEL_NAME}@candidate")


if __name__ == "__main__":
    main()
