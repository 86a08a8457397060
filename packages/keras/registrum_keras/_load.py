"""`load_model`: a registered Keras model version, downloaded and loaded, compiled."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import keras

import registrum
from registrum_keras._callback import FLAVOR


def load_model(
    ref: str,
    *,
    store: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> keras.Model:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and loads it with
    `keras.saving.load_model`: the compiled model, optimizer state included.

    Args:
        ref: the model version.
        store: where it is registered (default `REGISTRUM_URL`, else the embedded store).
        custom_objects, compile, safe_mode: passed to `keras.saving.load_model`.
    """
    with registrum.Client(store) as client:
        version = client.model_version(ref)
        if version.flavor != FLAVOR:
            raise ValueError(
                f"{version.ref} is a {version.flavor!r} model, not a Keras one; "
                "load it with its own framework's load_model"
            )
        with tempfile.TemporaryDirectory(prefix="registrum-keras-") as folder:
            client.download(version.ref, folder)  # the version resolved above, whatever moves
            files = sorted(Path(folder).rglob("*.keras"))
            if len(files) != 1:
                raise ValueError(
                    f"{version.ref} holds {len(files)} .keras files; load_model needs exactly one"
                )
            return keras.saving.load_model(
                files[0], custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
            )
