"""What requests may hold, said in JSON schema for the OpenAPI document.

The request models keep free-form fields as `Any` (so that the service layer names what
is wrong, the same as in-process), and path and query parameters are plain strings and
integers; here they get the types, patterns, enums and ranges the service layer accepts,
so that a reader, or a generated request, knows them. The service layer still decides.
Values it can only judge against stored state (a cursor, a filter, a lineage node, an
unassigned code point in a name) stay as loose as they must.
"""

from __future__ import annotations

from typing import Any

from registrum import validation as v
from registrum.entities import ROLES
from registrum.store.governance.webhooks import WEBHOOK_EVENTS

Schema = dict[str, Any]

# Characters no name may hold: controls, and the invisible and direction-control ones
# (the service layer also refuses unassigned and private-use code points, which a pattern
# cannot list).
_HIDDEN = r"\x00-\x1f\x7f-\x9f\xad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ue000-\uf8ff"
_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": v.MAX_NAME,
    "pattern": rf"^[^\s/@{_HIDDEN}](?:[^/@{_HIDDEN}]*[^\s/@{_HIDDEN}])?$",
}
_KEY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": v.MAX_NAME,
    "pattern": rf"^[^\s{_HIDDEN}](?:[^{_HIDDEN}]*[^\s{_HIDDEN}])?$",
}
_RUN_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_SHA256: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ALIAS: Schema = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,127}$"}
_ID: Schema = {"type": "integer", "minimum": 1, "maximum": v.MAX_ID}
_VERSION: Schema = {"type": "string", "pattern": "^(?:[1-9][0-9]{0,8}|latest)$"}
_REF: Schema = {
    "type": "string",
    "pattern": "^(?:[1-9][0-9]{0,8}|latest|[A-Za-z][A-Za-z0-9_.-]{0,127})$",
}
_TEXT: Schema = {"anyOf": [{"type": "string", "maxLength": 65536}, {"type": "null"}]}


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_PARAMETERS: dict[str, Schema] = {
    "project": _NAME,
    "name": _NAME,
    "model": _NAME,
    "user": _NAME,
    "run_id": _RUN_ID,
    "key": _KEY,
    "sha256": _SHA256,
    "alias": _ALIAS,
    "ref": _REF,
    "version": _VERSION,
    "artifact_id": _ID,
    "token_id": _ID,
    "request_id": _ID,
    "expected_version": _ID,
    "webhook_id": {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"},
    "state": _enum("open", "approved", "rejected", "cancelled", "stale"),
    "status": _enum("pending", "delivered", "failed"),
    "direction": _enum("up", "down", "both"),
    "depth": {"type": "integer", "minimum": 0, "maximum": 100},
    "max_points": {"type": "integer", "minimum": 2, "maximum": 100000},
    "Idempotency-Key": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}
_FILE_PATH: Schema = {"type": "string", "minLength": 1, "maxLength": v.MAX_PATH}
_PARAMETERS_OF: dict[str, dict[str, Schema]] = {
    "list_run_files": {"prefix": _nullable({"type": "string", "maxLength": v.MAX_PATH})},
    "run_file_info": {"path": _FILE_PATH},
    "download_run_file": {"path": _FILE_PATH},
    "compare_code": {"a": _RUN_ID, "b": _RUN_ID},
    "diff_datasets": {"a": _VERSION, "b": _VERSION},
}

_TAGS: Schema = {
    "type": "object",
    "propertyNames": _KEY,
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
_FILES: Schema = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["path", "sha256", "size"],
        "properties": {
            "path": {"type": "string", "minLength": 1, "maxLength": v.MAX_PATH},
            "sha256": _SHA256,
            "size": {"type": "integer", "minimum": 0},
        },
    },
}
_JSON_OBJECT: Schema = _nullable({"type": "object"})
_FIELDS: dict[str, Schema] = {
    "project": _NAME,
    "name": _NAME,
    "id": _nullable(_RUN_ID),
    "run_id": _nullable(_RUN_ID),
    "parent_id": _nullable(_RUN_ID),
    "job_type": _nullable(_NAME),
    "user": _nullable(_NAME),
    "model": _nullable(_NAME),
    "host": _nullable(_KEY),
    "description": _TEXT,
    "comment": _TEXT,
    "flavor": _nullable(_NAME),
    "type": _NAME,
    "fingerprint": {"type": "string", "minLength": 8, "maxLength": 128},
    "config": _nullable({"type": "object", "propertyNames": _KEY}),
    "params": {"type": "object", "propertyNames": _KEY},
    "metadata": _JSON_OBJECT,
    "schema": _JSON_OBJECT,
    "signature": _JSON_OBJECT,
    "extra": _JSON_OBJECT,
    "metrics": _nullable({"type": "object", "additionalProperties": {"type": "number"}}),
    "tags": _nullable(_TAGS),
    "files": _nullable(_FILES),
    "aliases": {"type": "array", "items": _ALIAS},
    "alias": _ALIAS,
    "version": _ID,
    "status": _enum(*v.RUN_STATUSES),
    "kind": _enum("dataset", "model_version", "artifact"),
    "role": _NAME,
    "commit": _nullable({"type": "string", "minLength": 1, "maxLength": 64}),
    "branch": _nullable(_KEY),
    "remote": _TEXT,
    "diff_sha256": _nullable(_SHA256),
    "protected": {"type": "array", "items": _ALIAS},
    "approver_role": _enum(*ROLES),
    "approvals_needed": {"type": "integer", "minimum": 1, "maximum": 100},
    "allow_self_approval": {"type": "boolean"},
    "gates": {"type": "array", "items": {"type": "object"}},
    "events": {"type": "array", "minItems": 1, "items": _enum(*WEBHOOK_EVENTS)},
    "url": {"type": "string", "format": "uri"},
    "secret": _TEXT,
}
_BOUNDS: dict[str, Schema] = {
    "version": {"minimum": 1, "maximum": v.MAX_ID},
    "expected_version": {"minimum": 1, "maximum": v.MAX_ID},
    "target_id": {"minimum": 1, "maximum": v.MAX_ID},
    "artifact_id": {"minimum": 1, "maximum": v.MAX_ID},
    "rows": {"minimum": 0, "maximum": 2**63 - 1},
}
_FIELDS_OF: dict[str, dict[str, Schema]] = {
    "SetMember": {"role": _enum(*ROLES)},
    "CreateRun": {"user": _nullable(_KEY)},
    "CreateArtifact": {"files": {**_FILES, "minItems": 1}},
    "MissingBlobs": {"sha256s": {"type": "array", "items": _SHA256}},
    "SetStatus": {"status": _enum(*v.RUN_STATUSES)},
}


def constrain_fields(component: str, schema: Schema) -> None:
    """A body's free-form fields (`Any` in the pydantic model, so that the service layer
    names what is wrong) described as what the service layer accepts."""
    explicit = _FIELDS_OF.get(component, {})
    known = {**_FIELDS, **explicit}
    for field, current in schema.get("properties", {}).items():
        if field in explicit or (
            field in known and "type" not in current and "anyOf" not in current
        ):
            kept = {k: current[k] for k in ("title", "default", "description") if k in current}
            schema["properties"][field] = {**known[field], **kept}
        elif field in _BOUNDS:
            # Typed integers (ids, versions, counts) get the range the database holds.
            for option in current.get("anyOf", [current]):
                if option.get("type") == "integer":
                    option.update(_BOUNDS[field])


def constrain_parameters(operation: dict[str, Any], endpoint: str) -> None:
    """The path, query and header parameters of `endpoint`'s operation, by name."""
    known = {**_PARAMETERS, **_PARAMETERS_OF.get(endpoint, {})}
    for parameter in operation.get("parameters", []):
        constrained = known.get(parameter["name"])
        if constrained is None:
            continue
        current = parameter.get("schema", {})
        kept = {k: current[k] for k in ("title", "default", "description") if k in current}
        if current.get("type") == "array":
            parameter["schema"] = {**current, "items": constrained}
        else:
            parameter["schema"] = {**constrained, **kept}
