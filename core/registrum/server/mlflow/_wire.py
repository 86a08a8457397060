"""MLflow's wire: protobuf-JSON arguments in, MLflow's error body out.

Every MLflow route is a plain function `handler(store, args) -> dict`: `args` is the
request's JSON body merged with its query string (GET sends its arguments in the query,
lists as repeated keys; DELETE sends a JSON body), the answer is the protobuf-JSON
object the client parses. `ROUTES` holds them by (method, path), so the server and
`registrum import mlflow` (writing to an embedded store) call the same functions.

Errors: a Registrum error becomes MLflow's `{"error_code", "message"}` with the status
MLflow's own server uses; the client branches on the code (a get-by-name that answers
`RESOURCE_DOES_NOT_EXIST` makes the experiment; a 5xx is retried for minutes, so bad
input is never one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from registrum.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    RegistrumError,
    RunNotFound,
    StoreUnavailable,
    Unauthorized,
)
from registrum.store import Store

Args = Mapping[str, Any]
Handler = Callable[[Store, Args], dict[str, Any]]

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # under /api/2.0/mlflow, e.g. "/runs/create"
    handler: Handler


ROUTES: dict[tuple[str, str], Route] = {}
# Paths with parameters ("/logged-models/{model_id}"), tried after the fixed paths.
PATTERNS: list[tuple[str, re.Pattern[str], Route]] = []


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Registers `handler` for `METHOD /api/2.0/mlflow{path}`; a `{name}` segment of `path`
    matches one path segment and reaches the handler as `args[name]`."""

    def register(handler: Handler) -> Handler:
        key = (method.upper(), path)
        if key in ROUTES:
            raise RuntimeError(f"MLflow route {method} {path} is registered twice")
        found = Route(method.upper(), path, handler)
        ROUTES[key] = found
        if "{" in path:
            regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
            PATTERNS.append((method.upper(), re.compile(f"^{regex}$"), found))
        return handler

    return register


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for `METHOD path` and the values of its `{name}` segments."""
    found = ROUTES.get((method.upper(), path))
    if found is not None and "{" not in found.path:
        return found, {}
    for wanted, regex, candidate in PATTERNS:
        m = regex.match(path)
        if wanted == method.upper() and m is not None:
            return candidate, m.groupdict()
    return None


def paths_matching(path: str) -> list[str]:
    """The methods some route answers on `path` (for a 405's message)."""
    methods = {m for (m, p) in ROUTES if p == path}
    methods.update(m for m, regex, _ in PATTERNS if regex.match(path))
    return sorted(methods)


def call(store: Store, method: str, path: str, args: Args) -> dict[str, Any]:
    """Runs the handler of `METHOD path` in-process (what the server does per request)."""
    found = resolve(method, path)
    if found is None:
        raise MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow route {method} {API}{path}", 404)
    handler, params = found
    return handler.handler(store, {**args, **params})


class MlflowError(Exception):
    """An error with MLflow's code and status, raised by the adapter itself."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message, 400)


def not_found(message: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message, 404)


def translate(exc: RegistrumError) -> MlflowError:
    """A Registrum error as MLflow says it (codes from databricks.proto's ErrorCode)."""
    if isinstance(exc, RunNotFound) and "run_id" in exc.context:
        # In MLflow's words, which its tools match.
        message = f"Run with id={exc.context['run_id']} not found"
        return MlflowError("RESOURCE_DOES_NOT_EXIST", message, 404)
    if isinstance(exc, NotFound):
        return MlflowError("RESOURCE_DOES_NOT_EXIST", exc.message, 404)
    if isinstance(exc, AlreadyExists):
        # MLflow's server answers a duplicate with 400 and the client branches on the code.
        return MlflowError("RESOURCE_ALREADY_EXISTS", exc.message, 400)
    if isinstance(exc, InvalidArgument):
        return MlflowError("INVALID_PARAMETER_VALUE", exc.message, 400)
    if isinstance(exc, Unauthorized):
        return MlflowError("UNAUTHENTICATED", exc.message, 401)
    if isinstance(exc, Forbidden):
        return MlflowError("PERMISSION_DENIED", exc.message, 403)
    if isinstance(exc, Conflict):
        # ApprovalRequired, AliasMoved, InvalidTransition: the request itself is refused.
        return MlflowError("INVALID_STATE", exc.message, 400)
    if isinstance(exc, PayloadTooLarge):
        return MlflowError("REQUEST_LIMIT_EXCEEDED", exc.message, 413)
    if isinstance(exc, StoreUnavailable):
        return MlflowError("TEMPORARILY_UNAVAILABLE", exc.message, 503)
    if exc.status < 500:
        return MlflowError("BAD_REQUEST", exc.message, exc.status)
    return MlflowError("INTERNAL_ERROR", exc.message, 500)


# -- reading arguments ---------------------------------------------------------------


def string(args: Args, key: str, *, default: str | None = None, required: bool = True) -> str:
    value = args.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        if required:
            raise invalid(f"Missing value for required parameter '{key}'.")
        return ""
    if isinstance(value, list) and len(value) == 1:  # a query key given once
        value = value[0]
    if not isinstance(value, str):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected a string.")
    return value


def optional_string(args: Args, key: str) -> str | None:
    value = string(args, key, required=False)
    return value or None


def run_id(args: Args) -> str:
    """`run_id`, or the older `run_uuid` the client sends beside it."""
    value = args.get("run_id") or args.get("run_uuid")
    if not value:
        raise invalid("Missing value for required parameter 'run_id'.")
    return string({"run_id": value}, "run_id")


def integer(args: Args, key: str, *, default: int | None = None) -> int | None:
    """An int64: a JSON number, or its decimal string (protobuf-JSON writes int64 both ways)."""
    value = args.get(key)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise invalid(f"Invalid value {value!r} for parameter '{key}': expected an integer.")


def required_integer(args: Args, key: str) -> int:
    value = integer(args, key)
    if value is None:
        raise invalid(f"Missing value for required parameter '{key}'.")
    return value


_SPECIAL = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}


def number(value: Any, key: str) -> float:
    """A metric value: a JSON number or "NaN" / "Infinity" / "-Infinity"."""
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected a number.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"Invalid value {value!r} for parameter '{key}': expected a number.")


def encode_number(value: float) -> float | str:
    """A float as protobuf-JSON writes it: NaN and ±inf as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def strings(args: Args, key: str) -> list[str]:
    """A repeated string field: a JSON list, or the query key repeated."""
    value = args.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected a list of strings.")
    return list(value)


def key_values(args: Args, key: str) -> list[tuple[str, str]]:
    """A repeated `{key, value}` field (tags, params)."""
    value = args.get(key) or []
    if not isinstance(value, list):
        raise invalid(f"Invalid value for parameter '{key}': expected a list of {{key, value}}.")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise invalid(f"Invalid value for '{key}[{i}]': expected an object with key and value.")
        v = item.get("value", "")
        if v is None:
            v = ""
        if not isinstance(v, str):
            v = str(v)
        out.append((item["key"], v))
    return out


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def millis(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0
