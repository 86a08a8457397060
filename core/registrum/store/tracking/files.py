"""Run files: a run's file tree as MLflow writes it, one path at a time, each path
overwritable, each file a blob (see blob_access.py), so equal bytes are stored once.

A run's files are its working directory; a model version needs an immutable set of files,
so `freeze_run_files` copies the files under a folder into a versioned model artifact.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Integer, Select, Table, Text, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import Artifact, ArtifactFile, Project
from registrum.errors import ArtifactNotFound, BlobNotFound, InvalidArgument, StoreError
from registrum.store import schema as t
from registrum.store._base import RETRIES, StoreBase, json_object, now, project_record
from registrum.store.tracking.artifacts import SAME_DIGEST, ArtifactsMixin, manifest_digest
from registrum.store.tracking.blob_access import BlobsMixin


def under(column: Any, prefix: str) -> Any:
    """SQL: `column` is a path inside the folder `prefix` (no LIKE, so no escaping)."""
    head = prefix + "/"
    return func.substr(column, 1, len(head)) == head


def folder(prefix: str | None) -> str | None:
    """A folder path as given to a listing: None or "" is the root."""
    if prefix is None or prefix.strip("/") == "":
        return None
    return v.artifact_path(prefix.strip("/"))


@functools.cache
def _tree_listing(table: Table, owner: str, in_folder: bool) -> Select[Any]:
    """The files of one owner, by path (`in_folder`: those under a folder), built once per
    table (see _base.py); the same test as `under`, on bound values."""
    c = table.c
    query = select(c.path, c.sha256, c.size).where(c[owner] == bindparam("owner"))
    if in_folder:
        length = bindparam("length", type_=Integer)
        query = query.where(func.substr(c.path, 1, length) == bindparam("head", type_=Text))
    return query.order_by(c.path)


class FileTree(BlobsMixin, StoreBase):
    """Paths → blobs in a table keyed by (owner, path): the shared part of run files and
    logged models' files."""

    def _check_file_blob(self, conn: Connection, path: str, sha256: str, size: int) -> None:
        """The blob must be stored with `size` bytes and be the caller's to reference."""
        refused = self._unusable_blob(conn, [sha256])
        if refused is not None or not self.blobs.exists(sha256):
            raise BlobNotFound(
                f"file {path!r}: blob {sha256} was not uploaded; upload it first", sha256=sha256
            )
        actual = self.blobs.size(sha256)
        if actual != size:
            raise InvalidArgument(
                f"file {path!r}: declared size {size}, but blob {sha256} has {actual} bytes"
            )
        self._claim_blobs(conn, {sha256: size})

    def _write_tree_file(
        self, conn: Connection, table: Table, owner: str, owner_id: str, f: ArtifactFile
    ) -> ArtifactFile | None:
        """Writes (or overwrites) one path; returns what it replaced."""
        c = table.c
        old = conn.execute(
            select(c.path, c.sha256, c.size).where(c[owner] == owner_id, c.path == f.path)
        ).first()
        conn.execute(
            self._upsert(table, (owner, "path"), ("sha256", "size", "created_at")),
            {
                owner: owner_id,
                "path": f.path,
                "sha256": f.sha256,
                "size": f.size,
                "created_at": now(),
            },
        )
        return None if old is None else ArtifactFile(old.path, old.sha256, int(old.size))

    def _tree_files(
        self, conn: Connection, table: Table, owner: str, owner_id: str, prefix: str | None
    ) -> list[ArtifactFile]:
        query = _tree_listing(table, owner, prefix is not None)
        values: dict[str, Any] = {"owner": owner_id}
        if prefix is not None:
            values.update(head=prefix + "/", length=len(prefix) + 1)
        return [
            ArtifactFile(path, sha256, int(size))
            for path, sha256, size in conn.execute(query, values).all()
        ]

    def _tree_file(
        self, conn: Connection, table: Table, owner: str, owner_id: str, path: str
    ) -> ArtifactFile:
        c = table.c
        r = conn.execute(
            select(c.path, c.sha256, c.size).where(c[owner] == owner_id, c.path == path)
        ).first()
        if r is None:
            raise ArtifactNotFound(f"file {path!r} does not exist", path=path)
        return ArtifactFile(r.path, r.sha256, int(r.size))

    def _delete_tree_files(
        self, conn: Connection, table: Table, owner: str, owner_id: str, path: str | None
    ) -> list[str]:
        """Removes `path` and everything under it (None: every file); returns the paths."""
        c = table.c
        where = c[owner] == owner_id
        if path is not None:
            where = where & ((c.path == path) | under(c.path, path))
        gone = list(conn.execute(select(c.path).where(where)).scalars())
        if gone:
            conn.execute(delete(table).where(where))
        return gone


class RunFilesMixin(FileTree, ArtifactsMixin, StoreBase):
    def put_run_file(self, run_id: str, path: str, *, sha256: str, size: int) -> ArtifactFile:
        """Puts an uploaded blob at `path` in the run's files, replacing what was there.
        Accepted on finished runs too: MLflow's autolog writes after the run ends."""
        v.run_id(run_id)
        f = ArtifactFile(
            v.artifact_path(path), v.sha256(sha256), v.integer(size, "size", minimum=0, bits=64)
        )
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            self._check_file_blob(conn, f.path, f.sha256, f.size)
            old = self._write_tree_file(conn, t.run_files, "run_id", run_id, f)
            self._audit_run(
                conn,
                row,
                "run.file_written",
                before=None if old is None else old.to_dict(),
                after=f.to_dict(),
            )
        return f

    def project_of_run(self, run_id: str) -> Project:
        """The project a run belongs to (one cheap read, for checking paths that name both)."""
        v.run_id(run_id)
        with self._read() as conn:
            row = self._run_row(conn, run_id, need="viewer")
            p = conn.execute(select(t.projects).where(t.projects.c.id == row.project_id)).one()
        return project_record(p)

    def list_run_files(self, run_id: str, prefix: str | None = None) -> list[ArtifactFile]:
        """The run's files (all of them, or those under the folder `prefix`), by path."""
        v.run_id(run_id)
        where = folder(prefix)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            return self._tree_files(conn, t.run_files, "run_id", run_id, where)

    def get_run_file(self, run_id: str, path: str) -> ArtifactFile:
        """One file of the run; `ArtifactNotFound` when the path holds none."""
        v.run_id(run_id)
        path = v.artifact_path(path)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            return self._tree_file(conn, t.run_files, "run_id", run_id, path)

    def delete_run_files(self, run_id: str, path: str | None = None) -> list[str]:
        """Removes the file `path`, or the folder `path` with all it holds (None: all the
        run's files); returns the paths removed. Artifacts made from them keep their files."""
        v.run_id(run_id)
        where = folder(path)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            gone = self._delete_tree_files(conn, t.run_files, "run_id", run_id, where)
            if gone:
                self._audit_run(conn, row, "run.files_deleted", before={"paths": gone})
        return gone

    def freeze_run_files(
        self, run_id: str, prefix: str | None, *, name: str, type: str = "model"
    ) -> Artifact | None:
        """The run's files under `prefix` as a new version of artifact `name` of the run
        (the same files give the same version), their paths relative to `prefix`; None
        when the folder holds no files. Read and recorded in one transaction."""
        v.run_id(run_id)
        where = folder(prefix)
        name = v.name(name, "artifact name")
        v.name(type, "artifact type")
        meta = json_object({"mlflow_run_path": where or ""}, "metadata")
        with self._read() as conn:  # the same files frozen before: nothing to write
            row = self._run_row(conn, run_id, need="viewer")
            files = self._tree_files(conn, t.run_files, "run_id", run_id, where)
            if not files:
                return None
            digest = manifest_digest(relative(files, where))
            key = {"project_id": row.project_id, "name": name, "digest": digest}
            same = conn.execute(SAME_DIGEST, key).scalar()
            if same is not None:
                return self._load_artifact(conn, int(same))
        for _ in range(RETRIES):
            try:
                with self._tx() as conn:
                    row = self._run_row(conn, run_id, need="viewer")
                    files = self._tree_files(conn, t.run_files, "run_id", run_id, where)
                    if not files:
                        return None
                    manifest, digest = self._verified_manifest(
                        [f.to_dict() for f in relative(files, where)], conn
                    )
                    project = self._project_name(conn, row.project_id)
                    return self._create_artifact(
                        conn, project, name, type, manifest, digest, run_id, meta
                    )
            except IntegrityError:
                continue  # a concurrent writer took the version number: try the next
        raise StoreError(f"could not allocate a version for artifact {name!r}; try again")


def relative(files: Sequence[ArtifactFile], prefix: str | None) -> list[ArtifactFile]:
    """`files` (all under `prefix`) with paths relative to it."""
    if prefix is None:
        return list(files)
    cut = len(prefix) + 1
    return [ArtifactFile(f.path[cut:], f.sha256, f.size) for f in files]
