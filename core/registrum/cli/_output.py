"""How list and show commands print: an aligned table for people (the default), or JSON or
CSV for scripts (`--format`). Numbers print alike everywhere: integers whole, other numbers
to 6 significant digits in a table (every digit in CSV and JSON); a missing value is `-` in
a table and empty in CSV."""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("table", "json", "csv")


def add_format(parser: argparse.ArgumentParser) -> None:
    """Adds `--format table|json|csv` to a list or show command."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default, for people), json or csv (for scripts)",
    )


def number_text(value: float | int) -> str:
    """A number as every command prints it: 3, 0.123457, 1.5e+09, nan, inf."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


class When(float):
    """A time (Unix seconds): local to the minute in a table, ISO 8601 UTC in CSV."""


def text(value: Any, *, missing: str = "-", exact: bool = False) -> str:
    """A cell: `exact` (CSV) writes times as ISO 8601 UTC and keeps text whole."""
    if value is None:
        return missing
    if isinstance(value, When):
        if exact:
            moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
            return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
        return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float) and exact and math.isfinite(value):
        return repr(value)  # CSV keeps every digit: the shortest text that reads back exactly
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


@dataclass(frozen=True)
class Column:
    """A column: its header, and the value of a row (a number or text; None: missing)."""

    header: str
    value: Callable[[Any], Any]
    width: int | None = None  # table cells longer than this are cut
    shown: Callable[[Any], str] | None = None  # the table's text, where it is not `value`'s


def emit(
    args: argparse.Namespace,
    items: Sequence[Any],
    columns: Sequence[Column],
    *,
    empty: str | None = None,
    as_json: Callable[[Any], Any] | None = None,
) -> None:
    """Prints `items` in `args.format`: a table of `columns` (`empty` when there are none),
    CSV of the same columns, or JSON (each item's `to_dict()`, or `as_json(item)`)."""
    fmt = getattr(args, "format", "table")
    if fmt == "json":
        convert = as_json or _plain
        _print_json([convert(item) for item in items])
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.header for c in columns])
        for item in items:
            writer.writerow([text(c.value(item), missing="", exact=True) for c in columns])
    elif not items and empty is not None:
        print(empty)
    else:
        rows = [[_cut(_shown(c, item), c.width) for c in columns] for item in items]
        print_table([c.header for c in columns], rows)


def _shown(column: Column, item: Any) -> str:
    value = column.value(item)
    if column.shown is None or value is None:
        return text(value)
    return column.shown(value)


def emit_one(
    args: argparse.Namespace, record: Mapping[str, Any], render: Callable[[], None]
) -> None:
    """Prints one record: `render()` as a table, the record as JSON, or CSV of `field,value`
    rows (nested fields dotted: `params.lr`)."""
    fmt = getattr(args, "format", "table")
    if fmt == "json":
        _print_json(record)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["field", "value"])
        for key, value in _flat(record):
            writer.writerow([key, text(value, missing="", exact=True)])
    else:
        render()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns aligned to their widest cell; numbers right-aligned."""
    rows = list(rows)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    numeric = [
        any(r[i] != "-" for r in rows) and all(_numeric(r[i]) for r in rows)
        for i in range(len(headers))
    ]
    print(_line(headers, widths, numeric))
    for row in rows:
        print(_line(row, widths, numeric))


def _line(cells: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    out = [
        cell.rjust(width) if right else cell.ljust(width)
        for cell, width, right in zip(cells, widths, numeric, strict=True)
    ]
    return "  ".join(out).rstrip()


def _numeric(cell: str) -> bool:
    if cell == "-":
        return True
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def _cut(cell: str, width: int | None) -> str:
    if width is None or len(cell) <= width:
        return cell
    return cell[: width - 1] + "…"


def _plain(item: Any) -> Any:
    return item.to_dict() if hasattr(item, "to_dict") else item


def _print_json(value: Any) -> None:
    print(json.dumps(_finite(value), indent=2, default=_default, allow_nan=False))


def _finite(value: Any) -> Any:
    """NaN and ±inf as the API writes them ("NaN", "Infinity", "-Infinity"): valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: _finite(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(x) for x in value]
    if hasattr(value, "to_dict"):
        return _finite(value.to_dict())
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def _flat(record: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flat(value, f"{name}.")
        else:
            yield name, value
