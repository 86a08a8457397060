"""The scikit-learn flavor for `registrum.load_model`: the fitted estimator, asked with the
method its signature names (`predict`, else `transform`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registrum.entities import ModelVersion
from registrum.flavors import Flavor
from registrum_sklearn._persist import FLAVOR as NAME
from registrum_sklearn._persist import FORMATS, read_model


def _load(version: ModelVersion, folder: Path) -> Any:
    metadata = version.artifact.metadata or {}
    if metadata.get("format") not in FORMATS:
        raise ValueError(
            f"{version.ref} records the format {metadata.get('format')!r}; "
            f"load_model reads {' and '.join(FORMATS)}"
        )
    return read_model(folder, metadata, (), version.ref)


def _predict(estimator: Any, inputs: Any, signature: Mapping[str, Any] | None) -> Any:
    method = (signature or {}).get("method") or (
        "predict" if hasattr(estimator, "predict") else "transform"
    )
    return getattr(estimator, method)(inputs)


FLAVOR = Flavor(NAME, _load, _predict)
