"""The Keras flavor for `registrum.load_model`: the model's own `predict`, quietly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registrum.entities import ModelVersion
from registrum.flavors import Flavor
from registrum_keras._describe import FLAVOR as NAME
from registrum_keras._load import read_model


def _load(version: ModelVersion, folder: Path) -> Any:
    return read_model(version, folder, compile=False)


def _predict(model: Any, inputs: Any, signature: Mapping[str, Any] | None) -> Any:
    return model.predict(inputs, verbose=0)


FLAVOR = Flavor(NAME, _load, _predict)
