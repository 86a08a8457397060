"""Metric histories read straight from the database of the MLflow server an import copies.

An MLflow server answers `metrics/get-history` at some 20,000 to 35,000 points a second on a
small machine (each point goes through its ORM and its protobuf JSON), so a long history takes
the import that long to read, whatever the target does. Given the server's own
`--backend-store-uri` (SQLite or PostgreSQL), the import reads the points from the `metrics`
table instead, in the order and the shape the server would send them; everything else still
comes through the REST API. The database is only read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from registrum.errors import InvalidArgument, StoreUnavailable

Json = dict[str, Any]

_ROWS = 10_000  # rows fetched at a time
# MLflow's own order (SqlAlchemyStore.get_metric_history), so a history cut into batches is
# cut the same way whichever way it was read.
_HISTORY = text(
    "SELECT value, timestamp, step, is_nan FROM metrics "
    "WHERE run_uuid = :run AND key = :key ORDER BY timestamp, step, value"
)
_RUN = text("SELECT 1 FROM runs WHERE run_uuid = :run")
_KEYS = text("SELECT DISTINCT key FROM metrics WHERE run_uuid = :run AND key IN :keys").bindparams(
    bindparam("keys", expanding=True)
)
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


class WrongDatabase(InvalidArgument):
    """The database given is not the one the MLflow server reads (the import stops)."""


def _url(uri: str) -> str:
    """An MLflow backend store URI as SQLAlchemy takes it (MLflow's `postgresql://` means
    psycopg2; Registrum ships psycopg 3)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise InvalidArgument(
            f"--backend-store-uri {uri!r} is not a database URI: give the MLflow server's own "
            "--backend-store-uri, e.g. sqlite:////srv/mlflow/mlflow.db or "
            "postgresql://mlflow@db/mlflow"
        )
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


class MlflowDatabase:
    """The `metrics` and `runs` tables of an MLflow tracking database, read-only."""

    def __init__(self, uri: str) -> None:
        url = _url(uri)
        self.where = make_url(url).render_as_string(hide_password=True)
        if not url.startswith(("sqlite", "postgresql")):
            raise InvalidArgument(
                f"--backend-store-uri {self.where!r}: only SQLite and PostgreSQL MLflow "
                "databases are read directly; leave the option out to read through the server"
            )
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
            tables = set(inspect(self.engine).get_table_names())
        except (ArgumentError, NoSuchModuleError) as exc:
            raise InvalidArgument(f"--backend-store-uri {self.where!r}: {exc}") from None
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"cannot read the MLflow database at {self.where}: {_reason(exc)}"
            ) from None
        if not {"metrics", "runs"} <= tables:
            self.engine.dispose()
            raise InvalidArgument(
                f"{self.where} is not an MLflow tracking database (it has no metrics and runs "
                "tables): give the --backend-store-uri the MLflow server runs with"
            )

    def history(self, run_id: str, key: str) -> Iterator[Json]:
        """Every point of one metric of one run, as the server's get-history sends them:
        `{key, value, timestamp, step}`, NaN as the string "NaN" (±inf: MLflow stores them
        clamped to the largest double)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execution_options(stream_results=True, yield_per=_ROWS).execute(
                    _HISTORY, {"run": run_id, "key": key}
                )
                for value, timestamp, step, is_nan in rows:
                    number: float | str = "NaN" if is_nan or math.isnan(value) else float(value)
                    yield {"key": key, "value": number, "timestamp": timestamp, "step": step}
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"reading run {run_id}'s {key!r} from {self.where} failed: {_reason(exc)}"
            ) from None

    def check(self, run_id: str, keys: Sequence[str]) -> None:
        """Refuses a database that is not the server's: the run and the metrics the server
        says it has must be there."""
        try:
            with self.engine.connect() as conn:
                held = conn.execute(_RUN, {"run": run_id}).first() is not None
                found = set(conn.execute(_KEYS, {"run": run_id, "keys": list(keys)}).scalars())
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot read {self.where}: {_reason(exc)}") from None
        lacking = sorted(set(keys) - found)
        if not held or lacking:
            what = f"run {run_id}" if not held else f"metric(s) {', '.join(lacking)} of {run_id}"
            raise WrongDatabase(
                f"{self.where} does not hold {what}, which the MLflow server has: give the "
                "--backend-store-uri that server runs with, or leave the option out"
            )

    def close(self) -> None:
        self.engine.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's first line, without the statement or its parameters."""
    origin = getattr(exc, "orig", None) or exc
    return str(origin).strip().splitlines()[0] if str(origin).strip() else type(exc).__name__
