"""The Lightning flavor for `registrum.load_model`: the LightningModule in eval mode, called
on a tensor of the inputs without gradients."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from registrum.entities import ModelVersion
from registrum.flavors import Flavor
from registrum_lightning._load import read_model
from registrum_lightning._model import FLAVOR as NAME


def _load(version: ModelVersion, folder: Path) -> Any:
    module = read_model(version, folder)
    module.eval()
    return module


def _predict(module: Any, inputs: Any, signature: Mapping[str, Any] | None) -> Any:
    with torch.no_grad():
        out = module(torch.as_tensor(inputs))
    return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out


FLAVOR = Flavor(NAME, _load, _predict)
