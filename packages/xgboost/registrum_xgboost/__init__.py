"""Registrum for XGBoost: `RegistrumCallback` for training, `load_model` for the registry."""

from registrum.integration import require

require("xgboost", extra="xgboost")

from registrum_xgboost._callback import RegistrumCallback  # noqa: E402
from registrum_xgboost._load import load_model  # noqa: E402

__all__ = ["RegistrumCallback", "load_model"]
