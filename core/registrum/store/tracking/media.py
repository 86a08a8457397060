"""Run media: images, figures, tables and text, by key and step.

Each is a run file at `media/KEY/STEP.EXT` (so its bytes are a blob stored once, read,
deleted and collected with the run's other files) and a `run_media` row that says what it
is. Logging the same key and step again replaces it, as a run file is replaced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from registrum import validation as v
from registrum.entities import ArtifactFile, Media
from registrum.errors import MediaNotFound
from registrum.mediatypes import media_path, media_type
from registrum.store import schema as t
from registrum.store._base import StoreBase, json_object, loads, now
from registrum.store.tracking.files import RunFilesMixin

_LISTING = (
    select(
        t.run_media.c.key,
        t.run_media.c.step,
        t.run_media.c.kind,
        t.run_media.c.path,
        t.run_media.c.meta,
        t.run_media.c.created_at,
        t.run_files.c.sha256,
        t.run_files.c.size,
    )
    .select_from(t.run_media)
    # A file removed by hand (MLflow's delete of run files) takes its media out of sight.
    .join(
        t.run_files,
        (t.run_files.c.run_id == t.run_media.c.run_id) & (t.run_files.c.path == t.run_media.c.path),
    )
)


class MediaMixin(RunFilesMixin, StoreBase):
    def log_media(
        self,
        run_id: str,
        key: str,
        *,
        step: int,
        kind: str,
        format: str,
        sha256: str,
        size: int,
        meta: dict[str, Any] | None = None,
    ) -> Media:
        """Records an uploaded blob as the run's `kind` (image, figure, table, text) under
        `key` at `step`, replacing what that key held at that step."""
        v.run_id(run_id)
        key = v.key(key, "media key")
        step = v.integer(step, "step", minimum=0, bits=64)
        path = media_path(key, step, kind, format)
        meta_json = json_object(v.json_value(meta, "media meta"), "media meta")
        f = ArtifactFile(path, v.sha256(sha256), v.integer(size, "size", minimum=0, bits=64))
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            self._check_file_blob(conn, f.path, f.sha256, f.size)
            old = self._write_tree_file(conn, t.run_files, "run_id", run_id, f)
            created = now()
            conn.execute(
                self._upsert(
                    t.run_media, ("run_id", "key", "step"), ("kind", "path", "meta", "created_at")
                ),
                {
                    "run_id": run_id,
                    "key": key,
                    "step": step,
                    "kind": kind,
                    "path": path,
                    "meta": meta_json,
                    "created_at": created,
                },
            )
            self._audit_run(
                conn,
                row,
                "run.media_logged",
                before=None if old is None else old.to_dict(),
                after={"key": key, "step": step, "kind": kind, **f.to_dict()},
            )
        return Media(
            run_id, key, step, kind, path, media_type(path), f.sha256, f.size,
            loads(meta_json), created,
        )  # fmt: skip

    def list_media(self, run_id: str, key: str | None = None) -> list[Media]:
        """The run's media (or those of `key`), by key, then step."""
        v.run_id(run_id)
        query = _LISTING.where(t.run_media.c.run_id == run_id)
        if key is not None:
            query = query.where(t.run_media.c.key == v.key(key, "media key"))
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            rows = conn.execute(query.order_by(t.run_media.c.key, t.run_media.c.step)).all()
        return [self._media(run_id, r) for r in rows]

    def get_media(self, run_id: str, key: str, step: int) -> Media:
        """The media of `key` at `step`; `MediaNotFound` when there is none."""
        v.run_id(run_id)
        key = v.key(key, "media key")
        step = v.integer(step, "step", minimum=0, bits=64)
        query = _LISTING.where(
            t.run_media.c.run_id == run_id, t.run_media.c.key == key, t.run_media.c.step == step
        )
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            found = conn.execute(query).first()
        if found is None:
            raise MediaNotFound(
                f"run {run_id} logged no media {key!r} at step {step}", key=key, step=step
            )
        return self._media(run_id, found)

    def _media(self, run_id: str, r: Any) -> Media:
        return Media(
            run_id, r.key, int(r.step), r.kind, r.path, media_type(r.path), r.sha256,
            int(r.size), loads(r.meta), float(r.created_at),
        )  # fmt: skip
