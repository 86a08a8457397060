"""Registrum for Keras 3: `RegistrumCallback` for `model.fit`, `load_model` for the registry."""

try:
    import keras
except ImportError as exc:
    raise ImportError('registrum_keras needs Keras 3: pip install "registrum[keras]"') from exc

if int(keras.__version__.split(".")[0]) < 3:
    raise ImportError(
        f'registrum_keras needs Keras 3, found {keras.__version__}: pip install "registrum[keras]"'
    )

from registrum_keras._callback import RegistrumCallback
from registrum_keras._load import load_model

__all__ = ["RegistrumCallback", "load_model"]
