"""`load_model`: a registered scikit-learn model version, downloaded and read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registrum import integration
from registrum_sklearn._persist import FLAVOR, read_model


def load_model(ref: str, *, store: str | None = None, trusted: Sequence[str] = ()) -> Any:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) and returns the fitted
    scikit-learn estimator. Inside an active run (of the same store, online or offline) the
    run records that it used the version.

    A skops file is loaded trusting the types that were recorded when it was saved, plus
    `trusted`; any other type in it is refused. A joblib file is unpickled, which can run
    any code: load joblib models only from a store you trust.

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
        trusted: further type names to trust in a skops file.
    """
    if isinstance(trusted, str):
        raise TypeError(f"trusted must be a list of type names, not the string {trusted!r}")
    version, folder = integration.fetch_model(
        ref, flavor=FLAVOR, store=store, logged_by="TrackedEstimator"
    )
    return read_model(version, folder, trusted)
