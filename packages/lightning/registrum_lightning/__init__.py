"""Registrum for PyTorch Lightning: `RegistrumCallback` for `Trainer`, `load_model` for the
registry."""

from registrum.integration import require

require("lightning.pytorch", extra="lightning", needs="Lightning 2")

from registrum_lightning._callback import RegistrumCallback  # noqa: E402
from registrum_lightning._load import load_model  # noqa: E402

__all__ = ["RegistrumCallback", "load_model"]
