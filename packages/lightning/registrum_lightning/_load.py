"""`load_model`: a registered Lightning model version, downloaded and rebuilt as its module."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

import registrum
from registrum_lightning import _capture
from registrum_lightning._callback import FLAVOR


def load_model(
    ref: str, *, store: str | None = None, map_location: Any = "cpu", **load_options: Any
) -> pl.LightningModule:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns its
    LightningModule, rebuilt with `load_from_checkpoint` of the class it was trained as.

    Inside an active run (of the same store) the run records that it used the version.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
        map_location: where the weights go (`torch.load`'s map_location).
        **load_options: passed to `load_from_checkpoint` (`strict`, hyperparameter
            overrides, ...).
    """
    run = registrum.active_run()
    if run is not None and (
        run.settings.mode != "online" or store not in (None, run.settings.store)
    ):
        run = None  # it cannot record the use: offline, disabled, or another store
    with registrum.Client(store if run is None else run.settings.store) as client:
        version = client.model_version(ref)
        metadata = version.artifact.metadata or {}
        if version.flavor != FLAVOR or not {"module_class", "checkpoint"} <= metadata.keys():
            raise ValueError(
                f"{version.ref} is a {version.flavor!r} model, not one RegistrumCallback "
                "logged; load it with its own framework's load_model"
            )
        if run is not None:
            folder = run.use_model(version.ref)  # the version resolved above, whatever moves
        else:
            folder = client.download(
                version.ref,
                client.settings.home / "cache" / "models" / version.model / str(version.version),
            )
    module_class = _import(metadata["module_class"])
    model: pl.LightningModule = module_class.load_from_checkpoint(
        Path(folder) / metadata["checkpoint"], map_location=map_location, **load_options
    )
    return model


def _import(path: str) -> type[pl.LightningModule]:
    """The class at `module.Qualified.Name`."""
    if _capture.defined_in_a_function(path):
        raise ImportError(
            f"cannot import {path}: the class was defined inside a function. Define the "
            "LightningModule at the top level of a module to load it with load_model, or "
            "rebuild it with YourModule.load_from_checkpoint(path) from the downloaded version"
        )
    module_name, _, qualname = path.rpartition(".")
    while module_name:
        try:
            found: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the module exists; something it imports does not
            module_name, _, outer = module_name.rpartition(".")
            qualname = f"{outer}.{qualname}"
    else:
        raise ImportError(f"cannot import {path}: no module of that path can be imported")
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, pl.LightningModule)):
        raise TypeError(f"{path} is not a LightningModule class")
    return found
