"""Registrum: ML metadata store and model registry."""

from registrum.client.api import Client
from registrum.client.run import Run, active_run
from registrum.client.start import init
from registrum.errors import (
    AliasMoved,
    AliasNotFound,
    AlreadyExists,
    ArtifactNotFound,
    Conflict,
    InvalidArgument,
    ModelNotFound,
    ModelVersionNotFound,
    NotFound,
    RegistrumError,
    RunNotFound,
    StoreUnavailable,
)
from registrum.model import Model, load_model

__version__ = "0.1.0"

__all__ = [
    "AliasMoved",
    "AliasNotFound",
    "AlreadyExists",
    "ArtifactNotFound",
    "Client",
    "Conflict",
    "InvalidArgument",
    "Model",
    "ModelNotFound",
    "ModelVersionNotFound",
    "NotFound",
    "RegistrumError",
    "Run",
    "RunNotFound",
    "StoreUnavailable",
    "__version__",
    "active_run",
    "init",
    "load_model",
]

# No NullHandler on the "registrum" logger, unlike most libraries: a tracking failure must be
# heard. An application that configured logging (a handler on "registrum" or an ancestor,
# such as `logging.basicConfig`) gets the warnings through its own handlers; one that did not
# gets them on stderr from Python's last-resort handler. Only warnings go there, and the
# client writes one line per run and kind of failure.
