"""Registrum for scikit-learn: `TrackedEstimator` records fits in runs, `load_model` reads the
registry."""

from registrum.integration import require

sklearn = require("sklearn", extra="sklearn", needs="scikit-learn")

if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 6):
    raise ImportError(
        f"registrum_sklearn needs scikit-learn 1.6 or later, found {sklearn.__version__}: "
        'pip install "registrum[sklearn]" "scikit-learn>=1.6"'
    )

from registrum_sklearn._estimator import TrackedEstimator  # noqa: E402
from registrum_sklearn._load import load_model  # noqa: E402

__all__ = ["TrackedEstimator", "load_model"]
