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

__version__ = "0.1.0"

__all__ = [
    "AliasMoved",
    "AliasNotFound",
    "AlreadyExists",
    "ArtifactNotFound",
    "Client",
    "Conflict",
    "InvalidArgument",
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
]

import logging as _logging

_logging.getLogger("registrum").addHandler(_logging.NullHandler())
