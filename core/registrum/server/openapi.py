"""The OpenAPI document, made to say what the server does.

FastAPI's own document lists a 422 that this server never sends (a request that fails
validation gets a 400 with the one error body), lists no other error, and, since every
route answers through `JSON` rather than a response model, declares no response schema.
`install` replaces `app.openapi` with a document that, per operation:

* lists the errors it can answer, all with the error body (`Error`): 400 when it takes
  parameters or a body, 401/403 when it needs a token, 404 when it names something,
  409 for writes, 413 when it takes a body, 503 when the database is unreachable;
* declares its success schema: the record it answers (schemas made from the dataclasses
  in `registrum.entities`), a page of them, or the object it answers;
* declares the bodies of the routes that read theirs themselves (metric batches, blobs);
* describes parameters and body fields as the service layer accepts them
  (`openapi_inputs`).

A route that declares `responses=` of its own (416, 507, ...) keeps them. A route not
named in `_SUCCESS` is documented as answering a JSON object.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from registrum import entities
from registrum.server import openapi_inputs as inputs
from registrum.server.deps import get_store

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. run_not_found"},
                "message": {"type": "string", "description": "what was wrong and how to fix it"},
            },
        }
    },
}

_ERRORS = {
    400: "The request is not valid (a parameter or field is missing, of the wrong type or "
    "breaks a rule); nothing was changed. The message names the field.",
    401: "A token is needed (server started with --auth), or the one sent is not valid.",
    403: "The signed-in user's role does not allow this.",
    404: "Something the request names does not exist (or is not visible to the caller).",
    409: "The request clashes with the current state (exists already, alias moved, ...).",
    413: "The request body is larger than the server's limit.",
    503: "The database cannot be reached; retry later.",
}

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_BODY = {"POST", "PUT", "PATCH"}

_RECORDS = (
    entities.Project,
    entities.MetricSummary,
    entities.Run,
    entities.MetricHistory,
    entities.IngestResult,
    entities.ArtifactFile,
    entities.Media,
    entities.Artifact,
    entities.DatasetVersion,
    entities.RegisteredModel,
    entities.ModelVersion,
    entities.User,
    entities.ApiToken,
    entities.Membership,
    entities.Policy,
    entities.Vote,
    entities.PromotionRequest,
    entities.AliasMove,
    entities.Webhook,
    entities.Delivery,
    entities.AuditEvent,
    entities.LineageEdge,
    entities.LineageGraph,
    entities.Evaluation,
    entities.EvaluationHistory,
    entities.GcReport,
)


_RECORDS_BY_NAME = {record.__name__ for record in _RECORDS}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(items: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": items},
            "next_cursor": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "pass back as `cursor` for the next page; null on the last",
            },
        },
    }


def _items(items: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": items}},
    }


def _object(*required: str) -> Schema:
    return {"type": "object", "required": list(required)}


_OBJECT: Schema = {"type": "object"}
_BINARY: Schema = {"type": "string", "format": "binary"}
_STORED = _object("sha256", "size")

# What /health answers, 200 or 503.
HEALTH: Schema = {
    "type": "object",
    "required": ["status", "version", "database", "checks"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "version": {"type": "string"},
        "database": {"type": "string", "description": "the database's dialect"},
        "checks": {
            "type": "object",
            "description": "per part (database, blobs): ok or unavailable",
            "additionalProperties": {"enum": ["ok", "unavailable"]},
        },
        "error": ERROR["properties"]["error"],
    },
}

# The success body of each operation, by endpoint name.
_SUCCESS: dict[str, Schema] = {
    "health": HEALTH,
    "list_projects": _page(_ref("Project")),
    "create_project": _ref("Project"),
    "get_project": _ref("Project"),
    "restore_project": _ref("Project"),
    "set_retention": _ref("Project"),
    "apply_retention": _object("checkpoints", "artifacts"),
    "collect_garbage": _ref("GcReport"),
    "create_run": _ref("Run"),
    "get_run": _ref("Run"),
    "update_run": _ref("Run"),
    "restore_run": _ref("Run"),
    "move_run": _ref("Run"),
    "set_status": _ref("Run"),
    "log_params": _object("params"),
    "param_history": _items(_object("value", "logged_at")),
    "get_environment": {"type": ["object", "null"], "description": "null: none recorded"},
    "get_code_version": {"type": ["object", "null"], "description": "null: none recorded"},
    "run_inputs": _items(_OBJECT),
    "search_runs": _page(_ref("Run")),
    "list_runs": _page(_ref("Run")),
    "project_keys": _object("params", "metrics", "tags"),
    "log_metrics": _ref("IngestResult"),
    "summaries": {"type": "object", "additionalProperties": _ref("MetricSummary")},
    "histories": {
        "type": "object",
        "required": ["items", "missing"],
        "properties": {
            "items": {"type": "array", "items": _ref("MetricHistory")},
            "missing": {"type": "array", "items": _object("run_id", "key")},
        },
    },
    "history": _ref("MetricHistory"),
    "list_run_files": _page(_ref("ArtifactFile")),
    "list_media": _page(_ref("Media")),
    "log_media": _ref("Media"),
    "get_media": _ref("Media"),
    "upload": _STORED,
    "upload_unhashed": _STORED,
    "missing": _object("missing"),
    "create_artifact": _ref("Artifact"),
    "list_artifacts": _page(_ref("Artifact")),
    "get_artifact": _ref("Artifact"),
    "get_artifact_by_id": _ref("Artifact"),
    "restore_artifact": _ref("Artifact"),
    "log_dataset": _ref("DatasetVersion"),
    "list_datasets": _page(_ref("DatasetVersion")),
    "get_dataset": _ref("DatasetVersion"),
    "create_model": _ref("RegisteredModel"),
    "list_models": _page(_ref("RegisteredModel")),
    "get_model": _ref("RegisteredModel"),
    "update_model": _ref("RegisteredModel"),
    "restore_model": _ref("RegisteredModel"),
    "delete_model_tag": _ref("RegisteredModel"),
    "register_version": _ref("ModelVersion"),
    "list_versions": _page(_ref("ModelVersion")),
    "get_version": _ref("ModelVersion"),
    "update_version": _ref("ModelVersion"),
    "restore_version": _ref("ModelVersion"),
    "delete_version_tag": _ref("ModelVersion"),
    "set_alias": _ref("ModelVersion"),
    "lineage": _ref("LineageGraph"),
    "evaluations": _ref("EvaluationHistory"),
    "dataset_models": _items(_OBJECT),
    "list_audit": _page(_ref("AuditEvent")),
    "verify_audit": _object("ok", "events", "problems", "anchors", "anchor"),
    "verify_audit_against": _object("ok", "events", "problems", "anchors", "anchor"),
    "audit_anchor": _object("event", "hash", "time", "key", "signature"),
    "whoami": {"allOf": [_ref("User"), _object("roles")]},
    "list_users": _items(_ref("User")),
    "create_user": _ref("User"),
    "disable_user": _ref("User"),
    "list_tokens": _items(_ref("ApiToken")),
    "create_token": _ref("ApiToken"),
    "revoke_token": _ref("ApiToken"),
    "list_members": _items(_ref("Membership")),
    "set_member": _ref("Membership"),
    "set_policy": _ref("Policy"),
    "get_policy": _ref("Policy"),
    "open_request": _ref("PromotionRequest"),
    "get_request": _ref("PromotionRequest"),
    "approve": _ref("PromotionRequest"),
    "reject": _ref("PromotionRequest"),
    "cancel": _ref("PromotionRequest"),
    "list_requests": _page(_ref("PromotionRequest")),
    "alias_history": _page(_ref("AliasMove")),
    "create_webhook": _ref("Webhook"),
    "get_webhook": _ref("Webhook"),
    "list_webhooks": _page(_ref("Webhook")),
    "list_deliveries": _page(_ref("Delivery")),
}

# Bodies the routes read themselves, by endpoint name.
_METRIC_BATCH: Schema = {
    "type": "object",
    "required": ["seq", "keys", "steps", "values"],
    "additionalProperties": False,
    "properties": {
        "seq": {
            "type": "integer",
            "minimum": 0,
            "description": "batch number; a retry is kept once",
        },
        "keys": {"type": "array", "items": {"type": "string"}},
        "steps": {"type": "array", "items": {"type": "integer"}},
        "values": {
            "type": "array",
            "items": {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]},
        },
        "timestamps": {"type": "array", "items": {"type": "number"}},
    },
}
_BODIES: dict[str, Schema] = {
    "log_metrics": {"content": {"application/json": {"schema": _METRIC_BATCH}}, "required": True},
    "upload": {"content": {"application/octet-stream": {"schema": _BINARY}}, "required": True},
    "upload_unhashed": {
        "content": {"application/octet-stream": {"schema": _BINARY}},
        "required": True,
    },
}

# Success statuses besides the route's declared one.
_RANGED: dict[str, Schema] = {
    "206": {
        "description": "The requested byte range.",
        "content": {"application/octet-stream": {"schema": _BINARY}},
    },
    "416": {"description": "The range lies past the end of the content."},
}
_ALSO: dict[str, dict[str, Schema]] = {
    "upload": {"200": {"description": "The blob was stored already; nothing was sent on."}},
    "download": _RANGED,
    "download_run_file": _RANGED,
}
# Operations that answer bytes, not JSON.
_DOWNLOADS = {"download", "download_run_file"}
# Operations that answer text.
_TEXT = {"metrics"}


def install(app: FastAPI) -> None:
    """Makes `app.openapi` answer the corrected document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            correct(document, app)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def correct(document: dict[str, Any], app: FastAPI) -> None:
    """Rewrites FastAPI's `document` of `app` in place (see the module docstring)."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR
    for record in _RECORDS:
        components[record.__name__] = record_schema(record)
    for component, schema in components.items():
        if component not in _RECORDS_BY_NAME and component != "Error":
            inputs.constrain_fields(component, schema)
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            path = document["paths"].get(context.path_format or route.path_format, {})
            operation = path.get(method.lower())
            if operation is not None:
                _operation(operation, route, method)


def _operation(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    name = route.endpoint.__name__
    inputs.constrain_parameters(operation, name)
    if name in _BODIES:
        operation["requestBody"] = _BODIES[name]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    success = str(route.status_code or 200)
    answer = responses.setdefault(success, {"description": "Successful Response"})
    if success == "204":
        answer.pop("content", None)
    elif name in _SUCCESS:
        answer["content"] = {"application/json": {"schema": _SUCCESS[name]}}
    elif method == "HEAD":
        answer.pop("content", None)
    elif name not in _ALSO:
        # A schema the route declared itself (`responses=`) stands; else a JSON object.
        declared = answer.setdefault("content", {}).setdefault("application/json", {})
        if not declared.get("schema"):
            declared["schema"] = _OBJECT
    for also, extra in _ALSO.get(name, {}).items():
        responses.setdefault(also, extra)
    if name in _DOWNLOADS:
        answer["content"] = {"application/octet-stream": {"schema": _BINARY}}
    if name in _TEXT:
        answer["content"] = {"text/plain": {"schema": {"type": "string"}}}
    for status in _statuses(operation, route, method):
        declared = responses.setdefault(str(status), {})
        for key, value in _error(status, method).items():
            declared.setdefault(key, value)


def _statuses(operation: dict[str, Any], route: APIRoute, method: str) -> list[int]:
    takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
    signed_in = _depends_on(route.dependant, get_store)
    statuses = []
    if takes_input:
        statuses.append(400)
    if signed_in:
        statuses += [401, 403]
        if takes_input:
            statuses.append(404)
        if method in _WRITES:
            statuses.append(409)
        statuses.append(503)
    if method in _BODY:
        statuses.append(413)
    return sorted(statuses)


def _error(status: int, method: str) -> dict[str, Any]:
    body: dict[str, Any] = {"description": _ERRORS[status]}
    if method != "HEAD":
        body["content"] = {"application/json": {"schema": _ref("Error")}}
    if status == 401:
        body["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
        }
    return body


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    stack = [dependant]
    while stack:
        current = stack.pop()
        if current.call is call:
            return True
        stack.extend(current.dependencies)
    return False


def record_schema(record: type[Any]) -> Schema:
    """A JSON schema of what `record.to_dict()` answers: every field, always present."""
    hints = typing.get_type_hints(record)
    fields = [f.name for f in dataclasses.fields(record)]
    return {
        "type": "object",
        "required": [f for f in fields if f not in _SOMETIMES.get(record.__name__, ())],
        "properties": {f: _json_type(hints[f]) for f in fields},
    }


# Fields a record's `to_dict` leaves out at times: a webhook's secret is shown only in the
# answer that created it.
_SOMETIMES: dict[str, tuple[str, ...]] = {"Webhook": ("secret",)}


def _json_type(hint: Any) -> Schema:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_json_type(a) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        # Non-finite values travel as the strings "NaN", "Infinity", "-Infinity".
        return {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
    if hint is str:
        return {"type": "string"}
    if origin is dict:
        return {"type": "object", "additionalProperties": _json_type(args[1]) if args else {}}
    if origin is list:
        return {"type": "array", "items": _json_type(args[0]) if args else {}}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _ref(hint.__name__)
    return {}
