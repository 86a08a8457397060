"""The model file: skops where it can represent the estimator, joblib otherwise; and
`load_model`, which reads either back from the registry."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import sklearn

import registrum
from registrum_sklearn._describe import class_path

FLAVOR = "sklearn"
FORMATS = {"skops": "model.skops", "joblib": "model.joblib"}


def save_model(estimator: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
    """Writes the fitted estimator into `folder`; returns the file and the metadata that tells
    how to read it back (format, versions, and for skops the types the file needs trusted)."""
    metadata: dict[str, Any] = {
        "sklearn_version": sklearn.__version__,
        "estimator_class": class_path(estimator),
    }
    try:
        import skops
        import skops.io
    except ImportError:
        fallback = "skops is not installed"
    else:
        path = folder / FORMATS["skops"]
        try:
            skops.io.dump(estimator, path)
            untrusted = sorted(skops.io.get_untrusted_types(file=path))
        except Exception as exc:  # skops refuses some objects; joblib may still take them
            fallback = f"skops cannot save it: {type(exc).__name__}: {exc}"
        else:
            # Lambdas and local classes are saved by a name that cannot be imported back.
            unloadable = [name for name in untrusted if "<" in name]
            if not unloadable:
                metadata.update(
                    format="skops", skops_version=skops.__version__, trusted_types=untrusted
                )
                return path, metadata
            fallback = f"skops cannot load {', '.join(unloadable)} back"
        path.unlink(missing_ok=True)
    path = folder / FORMATS["joblib"]
    joblib.dump(estimator, path)
    metadata.update(format="joblib", joblib_version=joblib.__version__, why_not_skops=fallback)
    return path, metadata


def load_model(ref: str, *, store: str | None = None, trusted: Sequence[str] = ()) -> Any:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns the fitted
    scikit-learn estimator.

    A skops file is loaded trusting the types that were recorded when it was saved, plus
    `trusted`; any other type in it is refused. A joblib file is unpickled, which can run
    any code: load joblib models only from a store you trust.

    Args:
        ref: the model version.
        store: where it is registered (default `REGISTRUM_URL`, else the embedded store).
        trusted: further type names to trust in a skops file.
    """
    if isinstance(trusted, str):
        raise TypeError(f"trusted must be a list of type names, not the string {trusted!r}")
    with registrum.Client(store) as client:
        version = client.model_version(ref)
        if version.flavor != FLAVOR:
            raise ValueError(
                f"{version.ref} is a {version.flavor!r} model, not a scikit-learn one; "
                "load it with its own framework's load_model"
            )
        metadata = version.artifact.metadata or {}
        file_format = metadata.get("format")
        if file_format not in FORMATS:
            raise ValueError(
                f"{version.ref} records the format {file_format!r}; "
                f"load_model reads {' and '.join(FORMATS)}"
            )
        with tempfile.TemporaryDirectory(prefix="registrum-sklearn-") as folder:
            client.download(version.ref, folder)  # the version resolved above, whatever moves
            path = Path(folder) / FORMATS[file_format]
            if file_format == "joblib":
                return joblib.load(path)
            return _load_skops(path, [*metadata.get("trusted_types", []), *trusted], version.ref)


def _load_skops(path: Path, trusted: list[str], ref: str) -> Any:
    import skops.io

    needed = skops.io.get_untrusted_types(file=path)
    refused = sorted(set(needed) - set(trusted))
    if refused:
        raise ValueError(
            f"{ref} holds types that were not recorded when it was saved: "
            f"{', '.join(refused)}; if you trust them, pass load_model(..., trusted=[...])"
        )
    return skops.io.load(path, trusted=needed)
