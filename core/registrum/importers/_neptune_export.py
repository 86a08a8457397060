"""Reading a neptune-exporter export: its Snappy Parquet parts, one entity (run, model or
model version) at a time, with decimal steps kept exact.

The layout (neptune-exporter's `--data-path`): one folder per project, holding
`<run>_part_<n>.parquet` files whose rows are attribute values (`project_id`, `run_id`,
`attribute_path`, `attribute_type`, `step` decimal(18, 6), `timestamp`, one typed value
column). Model-registry objects sit in `models/` and `model_versions/` below the project
folder. File attributes point (`file_value.path`) into the `--files-path` tree, which mirrors
the project folders.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registrum.errors import InvalidArgument

REQUIRED = ("project_id", "run_id", "attribute_path", "attribute_type", "step", "timestamp")
SCALAR_TYPES = ("float", "int", "string", "bool", "datetime", "string_set")
FILE_TYPES = ("file", "file_set", "artifact")
# The columns each attribute type keeps its value in.
VALUE_COLUMN = {
    "float": "float_value",
    "int": "int_value",
    "string": "string_value",
    "bool": "bool_value",
    "datetime": "datetime_value",
    "string_set": "string_set_value",
    "float_series": "float_value",
    "string_series": "string_value",
    "histogram_series": "histogram_value",
    "file": "file_value",
    "file_set": "file_value",
    "artifact": "file_value",
    "file_series": "file_value",
}
SCOPES = ("model_versions", "models")  # folder names; anything else holds runs


@dataclass
class Entity:
    """One run, model or model version of the export: where its rows are."""

    project_id: str
    run_id: str
    scope: str  # "runs", "models" or "model_versions"
    folder: str  # the project's folder, relative to the data path
    parts: list[Path] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Names and sizes of its parts: an entity exported again with more data differs."""
        h = hashlib.sha256()
        for part in sorted(self.parts):
            h.update(f"{part.name}\0{part.stat().st_size}\n".encode())
        return h.hexdigest()[:32]


@dataclass
class FloatSeries:
    """A metric series; `steps` are the decimal steps times 10**scale, exact."""

    path: str
    steps: np.ndarray[Any, Any]
    scale: int
    values: np.ndarray[Any, Any]
    times: np.ndarray[Any, Any]  # Unix seconds; NaN where the export has none


@dataclass
class Point:
    """One point of a string, histogram or file series."""

    step: Decimal | None
    time: float | None
    value: Any


@dataclass
class EntityData:
    """An entity's attributes, by kind."""

    scalars: dict[str, tuple[str, Any]] = field(default_factory=dict)  # path -> (type, value)
    float_series: list[FloatSeries] = field(default_factory=list)
    string_series: dict[str, list[Point]] = field(default_factory=dict)
    histograms: dict[str, list[Point]] = field(default_factory=dict)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (type, file path)
    file_series: dict[str, list[Point]] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)  # attribute type -> rows

    def text(self, path: str) -> str | None:
        found = self.scalars.get(path)
        return None if found is None or found[1] is None else str(found[1])


def discover(data_path: Path) -> dict[str, list[Entity]]:
    """Every entity of the export, by Neptune project id, checking each part's columns."""
    if not data_path.is_dir():
        raise InvalidArgument(
            f"data path {data_path} is not a folder: give the folder neptune-exporter wrote "
            "with --data-path (one sub-folder per project)"
        )
    parts = sorted(data_path.rglob("*.parquet"))
    if not parts:
        raise InvalidArgument(
            f"no .parquet files under {data_path}: give the folder neptune-exporter wrote "
            "with --data-path"
        )
    entities: dict[tuple[str, str, str], Entity] = {}
    for part in parts:
        rel = part.relative_to(data_path)
        scope = next((s for s in SCOPES if s in rel.parts[:-1]), "runs")
        folder = rel.parts[0] if len(rel.parts) > 1 else ""
        for project_id, run_id in _ids(part):
            key = (project_id, run_id, scope)
            if key not in entities:
                entities[key] = Entity(project_id, run_id, scope, folder)
            entities[key].parts.append(part)
    projects: dict[str, list[Entity]] = defaultdict(list)
    for entity in entities.values():
        projects[entity.project_id].append(entity)
    return dict(projects)


def _ids(part: Path) -> Iterable[tuple[str, str]]:
    try:
        schema = pq.read_schema(part)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(f"{part} is not a readable Parquet file: {exc}") from None
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing or not any(c in schema.names for c in set(VALUE_COLUMN.values())):
        raise InvalidArgument(
            f"{part} is not a neptune-exporter part: it lacks the column(s) "
            f"{', '.join(missing) or 'holding values (float_value, string_value, ...)'}; "
            "point --data-path at neptune-exporter's output"
        )
    table = pq.read_table(part, columns=["project_id", "run_id"])
    if table.num_rows == 0:
        return []
    pairs = table.group_by(["project_id", "run_id"]).aggregate([])
    out = []
    for project_id, run_id in zip(
        pairs.column("project_id").to_pylist(), pairs.column("run_id").to_pylist(), strict=True
    ):
        if not project_id or not run_id:
            raise InvalidArgument(f"{part} has rows without a project_id or run_id")
        out.append((str(project_id), str(run_id)))
    return out


def fork_parents(entities: list[Entity]) -> dict[str, str]:
    """Each forked run's parent id (`sys/forking/parent`), read without the rest of its rows."""
    parents: dict[str, str] = {}
    for part in sorted({p for e in entities for p in e.parts}):
        if "string_value" not in pq.read_schema(part).names:
            continue
        rows = pq.read_table(
            part,
            columns=["run_id", "string_value"],
            filters=[("attribute_path", "=", "sys/forking/parent")],
        )
        for run_id, parent in zip(
            rows.column("run_id").to_pylist(), rows.column("string_value").to_pylist(), strict=True
        ):
            if parent:
                parents[str(run_id)] = str(parent)
    return parents


def read_entity(entity: Entity) -> EntityData:
    """All of one entity's attributes, its parts read with a filter on its run id."""
    tables = [
        pq.read_table(part, filters=[("run_id", "=", entity.run_id)]) for part in entity.parts
    ]
    table = pa.concat_tables(tables, promote_options="default")
    data = EntityData()
    kinds = table.column("attribute_type")
    for kind in pc.unique(kinds).to_pylist():
        rows = table.filter(pc.equal(kinds, kind))
        if kind in SCALAR_TYPES:
            _scalars(rows, kind, data)
        elif kind == "float_series":
            _float_series(rows, data)
        elif kind in ("string_series", "histogram_series", "file_series"):
            target = {
                "string_series": data.string_series,
                "histogram_series": data.histograms,
                "file_series": data.file_series,
            }[kind]
            _points(rows, kind, target)
        elif kind in FILE_TYPES:
            for path, value in zip(
                rows.column("attribute_path").to_pylist(),
                _column(rows, "file_value"),
                strict=True,
            ):
                if value and value.get("path"):
                    data.files[path] = (kind, value["path"])
        else:
            data.unknown[str(kind)] = rows.num_rows
    return data


def _column(rows: pa.Table, name: str) -> list[Any]:
    if name not in rows.column_names:
        return [None] * rows.num_rows
    return list(rows.column(name).to_pylist())


def _scalars(rows: pa.Table, kind: str, data: EntityData) -> None:
    for path, value in zip(
        rows.column("attribute_path").to_pylist(),
        _column(rows, VALUE_COLUMN[kind]),
        strict=True,
    ):
        data.scalars[path] = (kind, value)


def _times(rows: pa.Table) -> list[float | None]:
    """The timestamp column as Unix seconds (None where empty)."""
    column = rows.column("timestamp")
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return [None if us is None else us / 1e6 for us in column.to_pylist()]
    return [None if x is None else float(x) for x in column.to_pylist()]


def _decimal(step: Any) -> Decimal | None:
    if step is None:
        return None
    if isinstance(step, Decimal):
        return step
    return Decimal(repr(step)) if isinstance(step, float) else Decimal(step)


def _points(rows: pa.Table, kind: str, target: dict[str, list[Point]]) -> None:
    paths = rows.column("attribute_path").to_pylist()
    steps = rows.column("step").to_pylist()
    times = _times(rows)
    values = _column(rows, VALUE_COLUMN[kind])
    for path, step, time, value in zip(paths, steps, times, values, strict=True):
        if value is None:
            continue
        target.setdefault(path, []).append(Point(_decimal(step), time, value))
    for points in target.values():
        points.sort(key=lambda p: (p.step is None, p.step or 0))


def _float_series(rows: pa.Table, data: EntityData) -> None:
    """Each metric series, cut from the rows sorted by path (stable: logging order kept)."""
    rows = rows.filter(pc.is_valid(rows.column("step"))).sort_by("attribute_path")
    counts = pc.value_counts(rows.column("attribute_path"))
    start = 0
    for path, n in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
    ):
        series = rows.slice(start, n)
        start += n
        steps, scale = scaled_steps(series.column("step"))
        data.float_series.append(
            FloatSeries(
                path=path,
                steps=steps,
                scale=scale,
                values=_floats(series.column("float_value")),
                times=_floats(_seconds(series)),
            )
        )


def _floats(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A numeric column as float64, NaN where empty."""
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _seconds(rows: pa.Table) -> pa.ChunkedArray:
    column = rows.column("timestamp")
    if pa.types.is_timestamp(column.type):
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return pc.divide(micros.cast(pa.float64()), 1e6)
    return column


def scaled_steps(steps: pa.ChunkedArray | list[Any]) -> tuple[np.ndarray[Any, Any], int]:
    """Decimal steps as exact integers `step × 10**scale`, with the smallest scale that holds
    every step of the series (0 for whole steps)."""
    if isinstance(steps, pa.ChunkedArray):
        if pa.types.is_decimal128(steps.type) and not steps.null_count:
            return _unscaled(steps.combine_chunks())
        steps = steps.to_pylist()
    decimals = [_decimal(s) or Decimal(0) for s in steps]
    scale = 0
    for d in decimals:
        exponent = d.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > scale:
            scale = -exponent
    ints = [int(d.scaleb(scale)) for d in decimals]
    if any(not -(2**63) <= i < 2**63 for i in ints):
        raise InvalidArgument(
            f"a step times 10**{scale} does not fit in 64 bits; steps this large with this "
            "many decimals cannot be stored exactly"
        )
    return np.asarray(ints, dtype=np.int64), scale


def _unscaled(column: pa.Array) -> tuple[np.ndarray[Any, Any], int]:
    """`scaled_steps` of a decimal128 column, without a Python object per point: its buffer
    holds each step as a 128-bit integer `step × 10**type.scale`; trailing zeros common to
    every step are divided away."""
    words = np.frombuffer(column.buffers()[1], dtype="<i8")
    pairs = words[2 * column.offset : 2 * (column.offset + len(column))].reshape(-1, 2)
    low, high = pairs[:, 0].copy(), pairs[:, 1]
    if not bool(np.all(high == (low >> 63))):  # the high word only extends the sign
        raise InvalidArgument("a step does not fit in 64 bits: it cannot be stored exactly")
    scale = column.type.scale
    while scale > 0 and len(low) and not bool(np.any(low % 10)):
        low //= 10
        scale -= 1
    return low, scale


def resolve_file(files_path: Path, entity: Entity, relative: str) -> Path | None:
    """Where a file attribute's bytes are: under the project's folder of the files tree
    (neptune-exporter's layout), or directly under the files path."""
    candidates = [
        files_path / entity.folder / relative,
        files_path / relative,
        files_path / entity.folder / entity.scope / relative,
    ]
    return next((c for c in candidates if c.exists()), None)
