"""Importers: other trackers' history copied into a Registrum store, idempotently.

`import_neptune(...)` loads a neptune-exporter export; `import_mlflow(...)` copies an MLflow
tracking server through its REST API. The names load their module (and its
dependencies: pyarrow, ...) when first used, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registrum.importers._progress import ImportReport
    from registrum.importers.mlflow import import_mlflow
    from registrum.importers.neptune import import_neptune

__all__ = ["ImportReport", "import_mlflow", "import_neptune"]

_LAZY = {
    "ImportReport": "registrum.importers._progress",
    "import_mlflow": "registrum.importers.mlflow",
    "import_neptune": "registrum.importers.neptune",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
