"""Every error Registrum raises, one tree.

```
RegistrumError
├── InvalidArgument (ValueError)          400 invalid_argument
│   ├── InvalidName                        400 invalid_name
│   ├── FilterSyntaxError                  400 invalid_filter
│   └── HashMismatch                       400 hash_mismatch
├── Unauthorized                           401 unauthorized
├── Forbidden (PermissionError)            403 forbidden
├── NotFound (LookupError)                 404 not_found
│   ├── ProjectNotFound                    404 project_not_found
│   ├── RunNotFound                        404 run_not_found
│   ├── MetricNotFound                     404 metric_not_found
│   ├── BlobNotFound                       404 blob_not_found
│   ├── ArtifactNotFound                   404 artifact_not_found
│   ├── DatasetNotFound                    404 dataset_not_found
│   ├── ModelNotFound                      404 model_not_found
│   ├── ModelVersionNotFound               404 model_version_not_found
│   └── AliasNotFound                      404 alias_not_found
├── Conflict                               409 conflict
│   ├── AlreadyExists                      409 already_exists
│   ├── InvalidTransition                  409 invalid_transition
│   ├── AliasMoved                         409 alias_moved
│   ├── ApprovalRequired                   409 approval_required
│   └── IdempotencyKeyReused               409 idempotency_key_reused
├── PayloadTooLarge                        413 payload_too_large
├── RangeNotSatisfiable                    416 range_not_satisfiable
└── StoreError                             500 store_error
    ├── StoreUnavailable (ConnectionError) 503 store_unavailable
    │   └── SchemaMismatch                 503 schema_mismatch
    └── InsufficientStorage                507 insufficient_storage
```

Each class carries its HTTP status and error code, so the server maps an error
to a response and the HTTP client maps a response back to the same class.
"""

from __future__ import annotations

from typing import Any


class RegistrumError(Exception):
    """Base of every Registrum error."""

    status: int = 500
    code: str = "error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.context)
        return body


class InvalidArgument(RegistrumError, ValueError):
    """A value the caller passed is not acceptable; nothing was changed."""

    status = 400
    code = "invalid_argument"


class InvalidName(InvalidArgument):
    """A name (project, run, model, key, alias, path) breaks the naming rules."""

    code = "invalid_name"


class FilterSyntaxError(InvalidArgument):
    """A run-search filter could not be parsed; `position` is the offending offset."""

    code = "invalid_filter"

    def __init__(self, message: str, *, position: int, filter: str = "") -> None:
        super().__init__(message, position=position)
        self.position = position
        self.filter = filter


class HashMismatch(InvalidArgument):
    """Uploaded content does not hash to the sha256 it was declared with."""

    code = "hash_mismatch"


class Unauthorized(RegistrumError):
    """The server needs a valid API token and the request had none, or one that is unknown,
    expired or revoked, or whose user is disabled."""

    status = 401
    code = "unauthorized"


class Forbidden(RegistrumError, PermissionError):
    """The signed-in user's role does not allow this operation."""

    status = 403
    code = "forbidden"


class NotFound(RegistrumError, LookupError):
    """The thing asked for does not exist."""

    status = 404
    code = "not_found"


class ProjectNotFound(NotFound):
    code = "project_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class MetricNotFound(NotFound):
    code = "metric_not_found"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"


class MediaNotFound(NotFound):
    code = "media_not_found"


class DatasetNotFound(NotFound):
    code = "dataset_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ModelVersionNotFound(NotFound):
    code = "model_version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class Conflict(RegistrumError):
    """The request is valid but clashes with the current state."""

    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class InvalidTransition(Conflict):
    """A run status change that the lifecycle does not allow."""

    code = "invalid_transition"


class AliasMoved(Conflict):
    """A compare-and-set alias move lost: the alias no longer points where expected."""

    code = "alias_moved"


class ApprovalRequired(Conflict):
    """The alias is protected by the model's policy: it did not move; a move opens a
    promotion request (`request_id`) that reviewers approve."""

    code = "approval_required"

    @property
    def request_id(self) -> int | None:
        """The promotion request the move opened (None where none was opened: deleting a
        model or version a protected alias needs)."""
        found = self.context.get("request_id")
        return None if found is None else int(found)


class IdempotencyKeyReused(Conflict):
    """An idempotency key came back with a different request than the one it was first
    used for: a key names one logical write; send a new key for a new write."""

    code = "idempotency_key_reused"


class PayloadTooLarge(RegistrumError):
    status = 413
    code = "payload_too_large"


class RangeNotSatisfiable(RegistrumError):
    status = 416
    code = "range_not_satisfiable"


class StoreError(RegistrumError):
    """The store failed in a way that is not the caller's fault."""

    status = 500
    code = "store_error"


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached."""

    status = 503
    code = "store_unavailable"


class SchemaMismatch(StoreUnavailable):
    """The database's schema is not the one this version runs on: older (a server waits for
    `registrum db upgrade`, run on purpose, after a backup) or newer (written by a newer
    Registrum, which this one must not touch). The message names the command that fixes it."""

    code = "schema_mismatch"


class InsufficientStorage(StoreError):
    """The store has no room left for what was sent (a full disk or quota); nothing was
    kept, so the same request succeeds once space is freed."""

    status = 507
    code = "insufficient_storage"


def _all_errors() -> dict[str, type[RegistrumError]]:
    found: dict[str, type[RegistrumError]] = {}
    stack: list[type[RegistrumError]] = [RegistrumError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def error_for_code(code: str) -> type[RegistrumError]:
    """The error class for an error code, as the HTTP client needs it."""
    return _all_errors().get(code, RegistrumError)
