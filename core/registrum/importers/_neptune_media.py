"""Neptune's string and histogram series as Registrum media: one JSON Lines file per series.

A `media` artifact holds one file, `text.jsonl` (string series) or `histograms.jsonl`,
one line per point in step order: `{"step": 0.5, "timestamp": 1767225600.0, "text": "..."}`
or `{"step": 3, "timestamp": ..., "type": "COUNTING", "edges": [...], "values": [...]}`.
Its metadata says `{"media": "text" | "histogram", "key": <attribute path>, "points": n}`.
The bytes depend only on the points, so importing the series again makes the same artifact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from registrum.importers._neptune_export import EntityData, Point


def media_files(data: EntityData, folder: Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """(attribute path, file written under `folder`, artifact metadata) for each string and
    histogram series of `data`."""
    for kind, series, filename in (
        ("text", data.string_series, "text.jsonl"),
        ("histogram", data.histograms, "histograms.jsonl"),
    ):
        for path, points in sorted(series.items()):
            # One folder per series: the file inside keeps its plain name.
            target = folder / hashlib.sha256(f"{kind}\0{path}".encode()).hexdigest()[:16]
            target.mkdir()
            file = target / filename
            with file.open("w", encoding="utf-8") as out:
                for point in points:
                    out.write(json.dumps(_line(kind, point), sort_keys=True) + "\n")
            meta = {"media": kind, "key": path, "points": len(points), "source": "neptune"}
            yield path, file, meta


def _line(kind: str, point: Point) -> dict[str, Any]:
    line: dict[str, Any] = {"step": _number(point.step), "timestamp": point.time}
    if kind == "text":
        line["text"] = str(point.value)
    else:
        value = point.value or {}
        line["type"] = value.get("type")
        line["edges"] = list(value.get("edges") or [])
        line["values"] = list(value.get("values") or [])
    return line


def _number(step: Decimal | None) -> int | float | None:
    """A decimal step as the JSON number that reads back as it: whole steps as integers."""
    if step is None:
        return None
    return int(step) if step == step.to_integral_value() else float(step)
