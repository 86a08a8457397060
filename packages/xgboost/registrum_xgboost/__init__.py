"""Registrum for XGBoost: `RegistrumCallback` for training, `load_model` for the registry."""

try:
    import xgboost  # noqa: F401
except ImportError as exc:
    raise ImportError('registrum_xgboost needs xgboost: pip install "registrum[xgboost]"') from exc

from registrum_xgboost._callback import RegistrumCallback
from registrum_xgboost._load import load_model

__all__ = ["RegistrumCallback", "load_model"]
