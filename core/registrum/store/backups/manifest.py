"""The manifest of a backup folder: what it holds, so that a restore can check it first.

A backup folder holds `manifest.json` (written last: a folder without it is an interrupted
backup), the database (`database.sqlite`, or `database.pgdump` in pg_dump's custom format),
`blobs.txt` (each blob the database lists, `sha256 size` a line), the blobs themselves under
`blobs/ab/cd/<sha256>` when the store keeps them in a folder, and `audit-anchors.jsonl` (the
signed heads of the audit chain recorded beside the audit key, when there were any).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registrum.errors import InvalidArgument

MANIFEST = "manifest.json"
FORMAT = "registrum-backup"
FORMAT_VERSION = 1
SQLITE_FILE = "database.sqlite"
POSTGRES_FILE = "database.pgdump"
BLOB_LIST = "blobs.txt"
BLOB_DIR = "blobs"
ANCHORS = "audit-anchors.jsonl"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, read in chunks (a dump may be larger than memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A backup's manifest, as written and as read back.

    `files` maps each file of the folder except the blobs (named by their sha256 already) to
    its sha256; `counts` are rows of the main tables at the snapshot; `audit` holds the chain
    head at the snapshot and the id (never the value) of the key that signed the anchors.
    """

    registrum_version: str
    created_at: str
    schema_revision: str | None
    store_kind: str  # "sqlite" | "postgresql"
    store_url: str  # without password
    blobs_kind: str  # "folder" | the object store's scheme ("s3")
    blobs_location: str
    blobs_included: bool
    blob_count: int
    blob_bytes: int
    missing_blobs: tuple[str, ...]
    counts: dict[str, int]
    audit_head: tuple[int, str] | None
    audit_key_id: str | None
    files: dict[str, str]
    format_version: int = FORMAT_VERSION

    @property
    def database_file(self) -> str:
        return SQLITE_FILE if self.store_kind == "sqlite" else POSTGRES_FILE

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "registrum_version": self.registrum_version,
            "created_at": self.created_at,
            "schema_revision": self.schema_revision,
            "store": {"kind": self.store_kind, "url": self.store_url},
            "blobs": {
                "kind": self.blobs_kind,
                "location": self.blobs_location,
                "included": self.blobs_included,
                "count": self.blob_count,
                "bytes": self.blob_bytes,
                "missing": list(self.missing_blobs),
            },
            "counts": self.counts,
            "audit": {
                "head_event": self.audit_head[0] if self.audit_head else None,
                "head_hash": self.audit_head[1] if self.audit_head else None,
                "key_id": self.audit_key_id,
            },
            "files": self.files,
        }


def write(folder: Path, manifest: Manifest) -> None:
    """Writes the manifest last and durably: its presence marks the backup complete."""
    temp = folder / f".{MANIFEST}.partial"
    with temp.open("w") as out:
        json.dump(manifest.to_json(), out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, folder / MANIFEST)


def read(folder: Path) -> Manifest:
    """The manifest of the backup in `folder`, after checking that every file it names is
    there with the content it had (InvalidArgument names what is wrong)."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise InvalidArgument(f"there is no backup folder at {folder}")
    if not path.is_file():
        raise InvalidArgument(
            f"{folder} holds no {MANIFEST}: it is not a Registrum backup, or its backup was "
            "interrupted before it finished (the manifest is written last)"
        )
    try:
        data = json.loads(path.read_text())
        manifest = _parse(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"{path} is not a readable backup manifest: {exc}") from None
    _check_files(folder, manifest)
    return manifest


def _parse(data: dict[str, Any]) -> Manifest:
    if data.get("format") != FORMAT:
        raise ValueError(f"its format is {data.get('format')!r}, not {FORMAT!r}")
    version = int(data["format_version"])
    if version > FORMAT_VERSION:
        raise InvalidArgument(
            f"the backup is in format version {version}, written by Registrum "
            f"{data.get('registrum_version')}; this version reads format {FORMAT_VERSION} "
            "and older: restore it with that Registrum version or newer"
        )
    blobs, audit, store = data["blobs"], data["audit"], data["store"]
    head = audit.get("head_event")
    return Manifest(
        format_version=version,
        registrum_version=str(data["registrum_version"]),
        created_at=str(data["created_at"]),
        schema_revision=data["schema_revision"],
        store_kind=str(store["kind"]),
        store_url=str(store["url"]),
        blobs_kind=str(blobs["kind"]),
        blobs_location=str(blobs["location"]),
        blobs_included=bool(blobs["included"]),
        blob_count=int(blobs["count"]),
        blob_bytes=int(blobs["bytes"]),
        missing_blobs=tuple(str(s) for s in blobs["missing"]),
        counts={str(k): int(v) for k, v in data["counts"].items()},
        audit_head=None if head is None else (int(head), str(audit["head_hash"])),
        audit_key_id=audit.get("key_id"),
        files={str(k): str(v) for k, v in data["files"].items()},
    )


def _check_files(folder: Path, manifest: Manifest) -> None:
    if manifest.store_kind not in ("sqlite", "postgresql"):
        raise InvalidArgument(f"the backup holds a {manifest.store_kind!r} database, unknown here")
    for name, expected in manifest.files.items():
        path = folder / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise InvalidArgument(f"the backup in {folder} lacks {name}, which its manifest names")
        if sha256_file(path) != expected:
            raise InvalidArgument(
                f"{path} does not have the content the manifest records (sha256 differs): "
                "the backup was altered or damaged; restore another one"
            )
    if manifest.database_file not in manifest.files:
        raise InvalidArgument(f"the backup's manifest names no {manifest.database_file}")


def blob_list(folder: Path) -> list[tuple[str, int]]:
    """The blobs a backup lists, `(sha256, size)`, from its (checked) `blobs.txt`."""
    entries: list[tuple[str, int]] = []
    path = folder / BLOB_LIST
    if not path.exists():
        return entries
    with path.open() as f:
        for line in f:
            sha, size = line.split()
            entries.append((sha, int(size)))
    return entries


def blob_path(root: Path, sha256: str) -> Path:
    """Where a blob lives under a folder: the layout of the local blob store."""
    return root / sha256[:2] / sha256[2:4] / sha256
