"""Registrum for PyTorch Lightning: `RegistrumCallback` for `Trainer`, `load_model` for the
registry."""

try:
    import lightning.pytorch  # noqa: F401
except ImportError as exc:
    raise ImportError(
        'registrum_lightning needs Lightning 2: pip install "registrum[lightning]"'
    ) from exc

from registrum_lightning._callback import RegistrumCallback
from registrum_lightning._load import load_model

__all__ = ["RegistrumCallback", "load_model"]
