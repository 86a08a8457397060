"""How Neptune's names and values map to Registrum's: project names, run ids, labels,
typed params, times, artifact names, batch sequence numbers (the rules
docs/coming-from-neptune.md lists)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from registrum import validation as v
from registrum.errors import InvalidArgument
from registrum.importers import _neptune_export as ex

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SYS = "sys/"


def project_name(project_id: str) -> str:
    """The Registrum project a Neptune project lands in: `workspace/project` becomes
    `workspace.project`; '@' and characters that do not print become '-'. A name still
    refused (an invisible character that prints) becomes `neptune-` and a digest."""
    mapped = project_id.replace("/", ".").replace("@", "-")
    name = "".join(ch if ch.isprintable() else "-" for ch in mapped).strip(" -")
    try:
        return v.name(name[: v.MAX_NAME].strip(), "project name")
    except InvalidArgument:
        return f"neptune-{hashlib.sha256(project_id.encode()).hexdigest()[:16]}"


def run_id_for(project_id: str, neptune_id: str) -> str:
    """The Registrum run id of a Neptune run: its own id (`CLS-12`) when that is a valid run
    id (letters, digits, '_', '-'; at most 64), else `neptune-` and a digest of the project
    and run ids. Stable, so every import of the same run finds it."""
    if _RUN_ID.match(neptune_id):
        return neptune_id
    digest = hashlib.sha256(f"{project_id}\0{neptune_id}".encode()).hexdigest()[:32]
    return f"neptune-{digest}"


def parents_first(runs: list[ex.Entity], parents: dict[str, str]) -> list[ex.Entity]:
    """Runs ordered so that a fork's parent comes before it (then by id)."""
    by_id = {e.run_id: e for e in runs}
    ordered: list[ex.Entity] = []
    seen: set[str] = set()

    def visit(entity: ex.Entity, chain: tuple[str, ...]) -> None:
        if entity.run_id in seen or entity.run_id in chain:
            return
        parent = parents.get(entity.run_id)
        if parent is not None and parent in by_id:
            visit(by_id[parent], (*chain, entity.run_id))
        seen.add(entity.run_id)
        ordered.append(entity)

    for entity in sorted(runs, key=lambda e: e.run_id):
        visit(entity, ())
    return ordered


def label(text: str | None) -> str | None:
    """A run name, user, host or tag as Registrum takes them: control characters as spaces,
    no surrounding whitespace, at most 256 characters; None when nothing is left."""
    if text is None:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned.strip()[: v.MAX_NAME].strip() or None


def model_of(version_id: str, data: ex.EntityData) -> str:
    """The model a version belongs to: `sys/model_id`, else its id less the version number."""
    return data.text("sys/model_id") or version_id.rsplit("-", 1)[0]


def version_order(version_id: str) -> tuple[str, int]:
    model, _, number = version_id.rpartition("-")
    return (model, int(number)) if number.isdigit() else (version_id, 0)


def version_tags(entity: ex.Entity, data: ex.EntityData) -> dict[str, str]:
    tags = {"neptune.id": entity.run_id}
    stage = data.text("sys/stage")
    if stage:
        tags["neptune.stage"] = stage
    return tags


def user_scalars(data: ex.EntityData) -> dict[str, tuple[str, Any]]:
    return {
        path: found
        for path, found in data.scalars.items()
        if not path.startswith(_SYS) and found[1] is not None
    }


def params(data: ex.EntityData) -> dict[str, Any]:
    """Typed params from the scalar attributes outside `sys/`."""
    return {path: param(kind, value) for path, (kind, value) in user_scalars(data).items()}


def param(kind: str, value: Any) -> Any:
    if kind == "datetime":
        return iso(value)
    if kind == "string_set":
        return sorted(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def iso(value: Any) -> str:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat()
    return str(value)


def seconds(found: tuple[str, Any] | None) -> float | None:
    if found is None or found[1] is None:
        return None
    value = found[1]
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp()


def tag_text(value: Any) -> str:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list | tuple | set):
        return ",".join(sorted(str(x) for x in value))
    return str(value)


def seq(path: str, begin: int, steps: np.ndarray[Any, Any]) -> int:
    """A batch's `seq`: the same for the same points of the same series, import after import,
    so the store keeps a repeated batch once (63 bits of a digest of the series and steps)."""
    h = hashlib.sha256(f"{path}\0{begin}\0".encode())
    h.update(steps.tobytes())
    return int.from_bytes(h.digest()[:8], "big") >> 1


def step_text(step: Decimal) -> str:
    """A decimal step as written in paths: `0.5`, `3`, never `5E+1`."""
    return format(step.normalize(), "f")


def artifact_name(run_id: str, path: str) -> str:
    name = f"{run_id}.{path.replace('/', '.').replace('@', '-')}"
    if len(name) > v.MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        name = f"{name[: v.MAX_NAME - 17]}~{digest}"
    return name
