"""Registrum for Keras 3: `RegistrumCallback` for `model.fit`, `load_model` for the registry."""

from registrum.integration import require

keras = require("keras", extra="keras", needs="Keras 3")
if int(keras.__version__.split(".")[0]) < 3:
    raise ImportError(
        f'registrum_keras needs Keras 3, found {keras.__version__}: pip install "registrum[keras]"'
    )

from registrum_keras._callback import RegistrumCallback  # noqa: E402
from registrum_keras._load import load_model  # noqa: E402

__all__ = ["RegistrumCallback", "load_model"]
