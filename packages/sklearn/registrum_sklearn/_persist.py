"""The model file: skops where it can represent the estimator, joblib otherwise, and
reading either back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import sklearn

from registrum import integration
from registrum.entities import ModelVersion
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


def read_model(version: ModelVersion, folder: Path, trusted: Sequence[str] = ()) -> Any:
    """The estimator in a downloaded version's folder, read in the format it was saved in:
    by the integration, or by hand (`run.log_model("model.skops", flavor="sklearn")`, a
    `.skops` or `.joblib` file)."""
    metadata = version.artifact.metadata or {}
    if "format" in metadata:
        kind = metadata["format"]
        if kind not in FORMATS:
            raise ValueError(
                f"{version.ref} records the format {kind!r}; "
                f"load_model reads {' and '.join(FORMATS)}"
            )
        path = folder / FORMATS[kind]
    else:
        path = integration.model_file(version, folder, (".skops", ".joblib"))
        kind = path.suffix[1:].lower()
    if kind == "joblib":
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
