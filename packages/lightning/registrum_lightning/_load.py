"""`load_model`: a registered Lightning model version, downloaded and rebuilt as its module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from registrum import integration
from registrum.entities import ModelVersion
from registrum_lightning._model import FLAVOR
from registrum_lightning._model import module_class as class_at


def load_model(
    ref: str,
    *,
    store: str | None = None,
    module_class: type[pl.LightningModule] | None = None,
    map_location: Any = "cpu",
    **load_options: Any,
) -> pl.LightningModule:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns its
    LightningModule, rebuilt with `load_from_checkpoint` of the class it was trained as (or
    `module_class`, for a class defined in a training script or a function). Inside an
    active run (of the same store, online or offline) the run records that it used it.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
        module_class: the LightningModule class to rebuild it as.
        map_location: where the weights go (`torch.load`'s map_location).
        **load_options: passed to `load_from_checkpoint` (`strict`, hparam overrides, ...).
    """
    version, folder = integration.fetch_model(ref, flavor=FLAVOR, store=store)
    return read_model(
        version, folder, module_class=module_class, map_location=map_location, **load_options
    )


def read_model(
    version: ModelVersion,
    folder: Path,
    *,
    module_class: type[pl.LightningModule] | None = None,
    map_location: Any = "cpu",
    **load_options: Any,
) -> pl.LightningModule:
    """The LightningModule a downloaded version holds, rebuilt from its checkpoint. A
    checkpoint logged by hand names its class in its metadata:
    `run.log_model("last.ckpt", flavor="lightning", metadata={"module_class": "pkg.Net"})`."""
    metadata = version.artifact.metadata or {}
    if module_class is None and "module_class" not in metadata:
        raise ValueError(
            f"{version.ref} does not say which LightningModule it is: pass module_class=, or "
            'log it with metadata={"module_class": "package.module.Class"}'
        )
    cls = module_class or class_at(metadata["module_class"])
    if "checkpoint" in metadata:
        path = folder / metadata["checkpoint"]
    else:
        path = integration.model_file(version, folder, (".ckpt",))
    return cls.load_from_checkpoint(path, map_location=map_location, **load_options)
