"""`load_model`: a registered XGBoost model version as the Booster or estimator it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xgboost

from registrum import integration
from registrum.entities import ModelVersion, decode_nonfinite
from registrum_xgboost._describe import FLAVOR, model_class

BOOSTER_FILES = (".json", ".ubj", ".bin", ".model")  # what Booster.save_model writes


def load_model(ref: str, *, store: str | None = None) -> xgboost.Booster | xgboost.XGBModel:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns what was
    trained: an `xgboost.Booster`, or the scikit-learn estimator (`XGBClassifier`, ...) with
    its params. Inside an active run (of the same store, online or offline) the run records
    that it used the version.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
    """
    version, folder = integration.fetch_model(ref, flavor=FLAVOR, store=store)
    return read_model(version, folder)


def read_model(version: ModelVersion, folder: Path) -> xgboost.Booster | xgboost.XGBModel:
    """The Booster or estimator a downloaded version holds: one the callback logged, or a
    Booster's file logged by hand (`run.log_model("model.json", flavor="xgboost")`)."""
    metadata: dict[str, Any] = version.artifact.metadata or {}
    if not {"xgboost_class", "file"} <= metadata.keys():
        return xgboost.Booster(model_file=integration.model_file(version, folder, BOOSTER_FILES))
    cls = model_class(metadata["xgboost_class"])
    if cls is xgboost.Booster:
        return xgboost.Booster(model_file=folder / metadata["file"])
    params = {k: decode_nonfinite(x) for k, x in metadata.get("estimator_params", {}).items()}
    estimator: xgboost.XGBModel = cls(**params)
    estimator.load_model(folder / metadata["file"])
    return estimator
