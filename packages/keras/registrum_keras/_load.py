"""`load_model`: a registered Keras model version, downloaded and loaded, compiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from registrum import integration
from registrum.entities import ModelVersion
from registrum_keras._describe import FLAVOR


def load_model(
    ref: str,
    *,
    store: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> keras.Model:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and loads it with
    `keras.saving.load_model`: the compiled model, optimizer state included. Inside an
    active run (of the same store, online or offline) the run records that it used it.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
        custom_objects, compile, safe_mode: passed to `keras.saving.load_model`.
    """
    version, folder = integration.fetch_model(ref, flavor=FLAVOR, store=store)
    return read_model(
        version, folder, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
    )


def read_model(
    version: ModelVersion,
    folder: Path,
    *,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> keras.Model:
    """The Keras model a downloaded version holds."""
    # The version's own files only: the cache folder may hold others.
    path = integration.model_file(version, folder, (".keras",))
    return keras.saving.load_model(
        path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
    )
