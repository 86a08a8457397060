"""`load_model`: a registered XGBoost model version as the Booster or estimator it was."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import xgboost

import registrum
from registrum.entities import decode_nonfinite
from registrum_xgboost._callback import FLAVOR


def load_model(ref: str, *, store: str | None = None) -> xgboost.Booster | xgboost.XGBModel:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns what was
    trained: an `xgboost.Booster`, or the scikit-learn estimator (`XGBClassifier`, ...) with
    its params.

    Inside an active run (of the same store) the run records that it used the version.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
    """
    run = registrum.active_run()
    if run is not None and store not in (None, run.settings.store):
        run = None  # a version of another store: this run cannot record its use
    with registrum.Client(store if run is None else run.settings.store) as client:
        version = client.model_version(ref)
        metadata = version.artifact.metadata or {}
        if version.flavor != FLAVOR or "xgboost_class" not in metadata:
            raise ValueError(
                f"{version.ref} is a {version.flavor!r} model, not one RegistrumCallback "
                "logged; load it with its own framework's load_model"
            )
        model_class = _model_class(metadata["xgboost_class"])
        if run is not None:
            folder = run.use_model(version.ref)  # the version resolved above, whatever moves
            return _load(model_class, folder / metadata["file"], metadata)
        with tempfile.TemporaryDirectory(prefix="registrum-xgboost-") as downloaded:
            client.download(version.ref, downloaded)
            return _load(model_class, Path(downloaded) / metadata["file"], metadata)


def _model_class(name: str) -> type[Any]:
    """`xgboost.Booster` or the XGBoost estimator class of that name."""
    model_class = getattr(xgboost, name, None)
    if model_class is xgboost.Booster or (
        isinstance(model_class, type) and issubclass(model_class, xgboost.XGBModel)
    ):
        return model_class
    raise ValueError(f"xgboost {xgboost.__version__} has no model class {name!r}")


def _load(
    model_class: type[Any], path: Path, metadata: dict[str, Any]
) -> xgboost.Booster | xgboost.XGBModel:
    if model_class is xgboost.Booster:
        return xgboost.Booster(model_file=path)
    params = {k: decode_nonfinite(x) for k, x in metadata.get("estimator_params", {}).items()}
    estimator: xgboost.XGBModel = model_class(**params)
    estimator.load_model(path)
    return estimator
