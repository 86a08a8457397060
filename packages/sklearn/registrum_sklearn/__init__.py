"""Registrum for scikit-learn: `TrackedEstimator` records fits in runs, `load_model` reads the
registry."""

try:
    import sklearn
except ImportError as exc:
    raise ImportError(
        'registrum_sklearn needs scikit-learn: pip install "registrum[sklearn]"'
    ) from exc

if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 6):
    raise ImportError(
        f"registrum_sklearn needs scikit-learn 1.6 or later, found {sklearn.__version__}: "
        'pip install "registrum[sklearn]" "scikit-learn>=1.6"'
    )

from registrum_sklearn._estimator import TrackedEstimator
from registrum_sklearn._persist import load_model

__all__ = ["TrackedEstimator", "load_model"]
