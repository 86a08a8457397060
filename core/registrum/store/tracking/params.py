"""Run params: nested configs flattened to dotted keys, typed columns, value history."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from registrum import validation as v
from registrum.entities import decode_nonfinite, encode_float
from registrum.errors import InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, dumps, loads, now


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys: {"optimizer": {"lr": 1e-3}} -> {"optimizer.lr": 1e-3}."""
    if not isinstance(config, Mapping):
        raise InvalidArgument(
            f"params must be a mapping of names to values, got {type(config).__name__}"
        )
    if not prefix:
        v.json_value(config, "params")
    out: dict[str, Any] = {}
    for k, value in config.items():
        if not isinstance(k, str):
            raise InvalidArgument(f"param name {k!r} must be a string")
        full = f"{prefix}{k}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{full}."))
        else:
            out[v.key(full, "param name")] = value
    return out


def typed_param(value: Any) -> dict[str, Any]:
    """The stored columns for one param value.

    The strings "NaN", "Infinity" and "-Infinity" are the float values they
    name: that is how non-finite floats travel in JSON, so a param logged over
    HTTP and one logged in-process are stored alike.
    """
    value = decode_nonfinite(value)
    if value is None:
        return {"value_type": "null", "value_json": "null", "value_num": None, "value_str": None}
    if isinstance(value, bool):
        text = "true" if value else "false"
        return {
            "value_type": "bool",
            "value_json": text,
            "value_num": float(value),
            "value_str": text,
        }
    if isinstance(value, int):
        return {
            "value_type": "int",
            "value_json": str(value),
            # An int past a float's range still sorts and filters as the largest float.
            "value_num": float(value) if abs(value) < 2**1023 else math.copysign(math.inf, value),
            "value_str": str(value)[:250],
        }
    if isinstance(value, float):
        encoded = encode_float(value)
        return {
            "value_type": "float",
            "value_json": dumps(encoded),
            "value_num": value if not math.isnan(value) else None,
            "value_str": repr(value)[:250],
        }
    if isinstance(value, str):
        return {
            "value_type": "str",
            "value_json": v.json_size(dumps(value), "param value"),
            "value_num": None,
            "value_str": value[:250],
        }
    try:
        text = dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        text = dumps(repr(value))
        return {
            "value_type": "str",
            "value_json": text,
            "value_num": None,
            "value_str": repr(value)[:250],
        }
    v.json_size(text, "param value")
    return {"value_type": "json", "value_json": text, "value_num": None, "value_str": text[:250]}


def param_value(value_type: str, value_json: str) -> Any:
    value = loads(value_json)
    return decode_nonfinite(value) if value_type == "float" else value


class ParamsMixin(StoreBase):
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Logs params (nested dicts flattened); the same value again is a no-op,
        a changed value is kept with its history. Returns the flattened params."""
        v.run_id(run_id)
        flat = flatten(params)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            self._write_params(conn, run_id, row.project_id, flat)
            if flat:
                self._audit_run(conn, row, "run.params_logged", after=flat)
        return flat

    def param_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every value a param took, oldest first: [{"value", "logged_at"}]."""
        v.run_id(run_id)
        with self._read() as conn:
            row = self._run_row(conn, run_id, need="viewer")
            ids = self._key_ids(conn, row.project_id, [key], create=False)
            if key not in ids:
                return []
            rows = conn.execute(
                select(t.param_history.c.value_json, t.param_history.c.logged_at)
                .where(t.param_history.c.run_id == run_id, t.param_history.c.key_id == ids[key])
                .order_by(t.param_history.c.id)
            )
            return [
                {"value": decode_nonfinite(loads(r.value_json)), "logged_at": r.logged_at}
                for r in rows
            ]

    # -- helpers -------------------------------------------------------------

    def _write_params(
        self, conn: Connection, run_id: str, project_id: int, flat: dict[str, Any]
    ) -> None:
        if not flat:
            return
        ids = self._key_ids(conn, project_id, flat)
        current = {
            int(r.key_id): r.value_json
            for r in conn.execute(
                select(t.params.c.key_id, t.params.c.value_json).where(
                    t.params.c.run_id == run_id, t.params.c.key_id.in_(ids.values())
                )
            )
        }
        stamp = now()
        changed = []
        for key, value in flat.items():
            columns = typed_param(value)
            if current.get(ids[key]) == columns["value_json"]:
                continue
            changed.append({"run_id": run_id, "key_id": ids[key], "updated_at": stamp, **columns})
        if not changed:
            return
        updated = ("value_type", "value_json", "value_num", "value_str", "updated_at")
        conn.execute(self._upsert(t.params, ("run_id", "key_id"), updated), changed)
        conn.execute(
            t.param_history.insert(),
            [
                {
                    "run_id": run_id,
                    "key_id": c["key_id"],
                    "value_json": c["value_json"],
                    "logged_at": stamp,
                }
                for c in changed
            ],
        )
