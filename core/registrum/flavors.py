"""Flavors: how a registered model version of each framework is read back and asked to
predict, so that `registrum.load_model` serves any of them while the core imports none.

An integration declares its flavor as a `Flavor` and makes it known through the entry point
group `registrum.flavors` (`sklearn = "registrum_sklearn._flavor:FLAVOR"`). The integrations
in the `registrum` wheel are also found by name where the wheel's metadata is unavailable (a
source checkout on `PYTHONPATH`). A flavor's integration is imported only when a version of
it is loaded; one whose extra is missing says which to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from registrum.entities import ModelVersion
from registrum.errors import InvalidArgument

GROUP = "registrum.flavors"
# The flavors of the integrations shipped in the wheel: their module, and the extra that
# installs the framework.
BUILT_IN = {
    "sklearn": ("registrum_sklearn._flavor", "sklearn"),
    "xgboost": ("registrum_xgboost._flavor", "xgboost"),
    "lightning": ("registrum_lightning._flavor", "lightning"),
    "keras": ("registrum_keras._flavor", "keras"),
}


@dataclass(frozen=True)
class Flavor:
    """One framework's way with a registered version.

    Attributes:
        name: the flavor a version records (`ModelVersion.flavor`).
        load: the framework's own object from the version and the folder its files were
            downloaded into.
        predict: the predictions of that object for prepared inputs (a pandas frame of the
            signature's columns, or an array of its shape; see `registrum.model`), as an
            array, a frame or a list.
    """

    name: str
    load: Callable[[ModelVersion, Path], Any]
    predict: Callable[[Any, Any, Mapping[str, Any] | None], Any]


def flavor(name: str | None) -> Flavor:
    """The flavor `name`; `InvalidArgument` for one nobody declared, `ImportError` saying
    which extra to install for a known one whose framework is missing."""
    if not name:
        raise InvalidArgument(
            "the version records no flavor: load its files with `Client.download` and the "
            "framework's own loader"
        )
    extra = BUILT_IN.get(name, ("", name))[1]
    try:
        for point in entry_points(group=GROUP):
            if point.name == name:
                return _checked(point.load(), name)
        if name in BUILT_IN:
            return _checked(importlib.import_module(BUILT_IN[name][0]).FLAVOR, name)
    except ImportError as exc:
        raise ImportError(
            f'loading a {name} model needs registrum[{extra}]: pip install "registrum[{extra}]" '
            f"({exc})"
        ) from exc
    known = sorted({*BUILT_IN, *(p.name for p in entry_points(group=GROUP))})
    raise InvalidArgument(
        f"no integration loads the flavor {name!r} (known: {', '.join(known)}); declare one "
        f"under the entry point group {GROUP!r}"
    )


def _checked(found: Any, name: str) -> Flavor:
    if not isinstance(found, Flavor) or found.name != name:
        raise InvalidArgument(f"the entry point for flavor {name!r} is not its Flavor")
    return found
