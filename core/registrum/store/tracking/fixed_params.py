"""Params that keep their first value: MLflow's rule, for what is written through its API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from registrum import validation as v
from registrum.errors import InvalidArgument
from registrum.store import schema as t
from registrum.store._base import loads
from registrum.store.tracking.params import ParamsMixin, flatten, typed_param


class FixedParamsMixin(ParamsMixin):
    def log_params_once(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Logs params that may not change once logged: the same value again is a no-op, a
        different one is refused and nothing of the call is stored (`log_params` keeps a
        changed value with its history instead)."""
        v.run_id(run_id)
        flat = flatten(params)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            ids = self._key_ids(conn, row.project_id, flat, create=False)
            if ids:
                p = t.params.c
                stored = {
                    int(r.key_id): r.value_json
                    for r in conn.execute(
                        select(p.key_id, p.value_json).where(
                            p.run_id == run_id, p.key_id.in_(ids.values())
                        )
                    )
                }
                for key, value in flat.items():
                    old = stored.get(ids.get(key, -1))
                    if old is not None and old != typed_param(value)["value_json"]:
                        raise InvalidArgument(
                            f"Changing param values is not allowed. Param with key={key!r} was "
                            f"already logged with value={loads(old)!r} for run ID={run_id!r}. "
                            f"Attempted logging new value {value!r}.",
                            key=key,
                        )
            self._write_params(conn, run_id, row.project_id, flat)
            if flat:
                self._audit_run(conn, row, "run.params_logged", after=flat)
