"""Artifacts: versioned manifests of files, each file a blob (see blob_access.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import Artifact, ArtifactFile
from registrum.errors import ArtifactNotFound, BlobNotFound, InvalidArgument, StoreError
from registrum.store import schema as t
from registrum.store._base import RETRIES, StoreBase, json_object, loads, now
from registrum.store.acting import current_principal
from registrum.store.tracking.blob_access import BlobsMixin

# Built once (see _base.py): an artifact and its files.
_ARTIFACT = (
    select(t.artifacts, t.projects.c.name.label("project"))
    .join(t.projects, t.projects.c.id == t.artifacts.c.project_id)
    .where(t.artifacts.c.id == bindparam("id"))
)
_ARTIFACT_FILES = (
    select(t.artifact_files.c.path, t.artifact_files.c.sha256, t.artifact_files.c.size)
    .where(t.artifact_files.c.artifact_id == bindparam("id"))
    .order_by(t.artifact_files.c.path)
)
SAME_DIGEST = (
    select(t.artifacts.c.id)
    .where(
        t.artifacts.c.project_id == bindparam("project_id"),
        t.artifacts.c.name == bindparam("name"),
        t.artifacts.c.digest == bindparam("digest"),
    )
    .limit(1)
)


def manifest_digest(files: Iterable[ArtifactFile]) -> str:
    """sha256 of the sorted manifest: the same files give the same digest."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\0{f.size}\n".encode())
    return h.hexdigest()


def _check_manifest(files: Sequence[Mapping[str, Any]]) -> list[ArtifactFile]:
    if not isinstance(files, Sequence) or isinstance(files, str | bytes):
        raise InvalidArgument("files must be a list of {path, sha256, size}")
    if not files:
        raise InvalidArgument("an artifact needs at least one file")
    out: list[ArtifactFile] = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        if not isinstance(f, Mapping):
            raise InvalidArgument(f"files[{i}] must be an object with path, sha256 and size")
        path = v.artifact_path(f.get("path"))
        if path in seen:
            raise InvalidArgument(f"file path {path!r} appears twice in the manifest")
        seen.add(path)
        out.append(
            ArtifactFile(
                path=path,
                sha256=v.sha256(f.get("sha256")),
                size=v.integer(f.get("size"), f"files[{i}].size", minimum=0, bits=64),
            )
        )
    return out


def artifact_in_use(artifact_id: Any) -> Any:
    """SQL: a dataset version, a live model version of a live model, or a live logged model
    stands on the artifact."""
    mv, m, d, lm = (
        t.model_versions.c,
        t.registered_models.c,
        t.dataset_versions.c,
        t.logged_models.c,
    )
    live_version = (
        select(mv.id)
        .join(t.registered_models, m.id == mv.model_id)
        .where(mv.artifact_id == artifact_id, mv.deleted_at.is_(None), m.deleted_at.is_(None))
    )
    dataset = select(d.id).where(d.artifact_id == artifact_id)
    logged = select(lm.id).where(lm.artifact_id == artifact_id, lm.deleted_at.is_(None))
    return live_version.exists() | dataset.exists() | logged.exists()


class ArtifactsMixin(BlobsMixin, StoreBase):
    # -- artifacts ------------------------------------------------------------

    def create_artifact(
        self,
        project: str,
        name: str,
        *,
        type: str,
        files: Sequence[Mapping[str, Any]],
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """Records a manifest of uploaded blobs as the next version of `name`.

        A manifest identical to an existing version of the same name returns
        that version instead of making a new one.
        """
        project = v.name(project, "project name")
        name = v.name(name, "artifact name")
        v.name(type, "artifact type")
        meta = json_object(metadata, "metadata")
        if run_id is not None:
            v.run_id(run_id)
        manifest, digest = self._verified_manifest(files)
        for _ in range(RETRIES):
            try:
                with self._tx() as conn:
                    return self._create_artifact(
                        conn, project, name, type, manifest, digest, run_id, meta
                    )
            except IntegrityError:
                continue  # a concurrent writer took the version number: try the next
        raise StoreError(f"could not allocate a version for artifact {name!r}; try again")

    def _verified_manifest(
        self, files: Sequence[Mapping[str, Any]], conn: Connection | None = None
    ) -> tuple[list[ArtifactFile], str]:
        """A checked manifest whose every blob is stored with its declared size and is the
        signed-in user's to reference, and its digest; read in `conn` when given (a
        transaction that goes on to record the artifact), else in a read of its own."""
        manifest = _check_manifest(files)
        usable = None
        if current_principal() is not None:
            if conn is not None:
                usable = self._usable_blobs(conn, [f.sha256 for f in manifest])
            else:
                with self._read() as read:
                    usable = self._usable_blobs(read, [f.sha256 for f in manifest])
        for f in manifest:
            if usable is not None and f.sha256 not in usable:
                # Refused in `_create_artifact`, once the caller's role is checked; a size
                # compared here would tell whether someone else stored it.
                continue
            if not self.blobs.exists(f.sha256):
                raise BlobNotFound(
                    f"file {f.path!r}: blob {f.sha256} was not uploaded; upload it first",
                    sha256=f.sha256,
                )
            actual = self.blobs.size(f.sha256)
            if actual != f.size:
                raise InvalidArgument(
                    f"file {f.path!r}: declared size {f.size}, "
                    f"but blob {f.sha256} has {actual} bytes"
                )
        return manifest, manifest_digest(manifest)

    def _create_artifact(
        self,
        conn: Connection,
        project: str,
        name: str,
        type: str,
        manifest: list[ArtifactFile],
        digest: str,
        run_id: str | None,
        meta: str,
    ) -> Artifact:
        project_id = self._project_id(conn, project, create=True, need="editor")
        if run_id is not None:
            self._run_row(conn, run_id, need="editor")
        refused = self._unusable_blob(conn, [f.sha256 for f in manifest])
        if refused is not None:
            path = next(f.path for f in manifest if f.sha256 == refused)
            raise BlobNotFound(
                f"file {path!r}: blob {refused} was not uploaded; upload it first", sha256=refused
            )
        a = t.artifacts.c
        same = conn.execute(
            SAME_DIGEST, {"project_id": project_id, "name": name, "digest": digest}
        ).scalar()
        if same is not None:
            return self._load_artifact(conn, int(same))
        self._claim_blobs(conn, {f.sha256: f.size for f in manifest})
        artifact_id = conn.execute(
            t.artifacts.insert()
            .values(
                project_id=project_id,
                name=name,
                version=self._next_version(conn, t.artifacts, project_id, name),
                type=type,
                digest=digest,
                run_id=run_id,
                size=sum(f.size for f in manifest),
                file_count=len(manifest),
                metadata=meta,
                created_at=now(),
            )
            .returning(a.id)
        ).scalar_one()
        conn.execute(
            t.artifact_files.insert(),
            [
                {"artifact_id": artifact_id, "path": f.path, "sha256": f.sha256, "size": f.size}
                for f in manifest
            ],
        )
        artifact = self._load_artifact(conn, int(artifact_id))
        if type == "checkpoint" and run_id is not None and loads(meta).get("replaces_best"):
            self._supersede_best(conn, artifact, run_id)
        self._audit(
            conn,
            "artifact.created",
            "artifact",
            f"{project}/{name}/{artifact.version}",
            project=project,
            after={
                "type": type,
                "digest": digest,
                "run_id": run_id,
                "files": [f.to_dict() for f in manifest],
            },
        )
        return artifact

    def _supersede_best(self, conn: Connection, new: Artifact, run_id: str) -> None:
        """Deletes the run's earlier best checkpoints of the same name: the new best replaced
        them (what the integrations' `checkpoints="best"` asks for; see retention.py)."""
        a = t.artifacts.c
        rows = conn.execute(
            select(a.id, a.version, a.metadata).where(
                a.run_id == run_id,
                a.name == new.name,
                a.project_id
                == select(t.projects.c.id)
                .where(t.projects.c.name == new.project)
                .scalar_subquery(),
                a.type == "checkpoint",
                a.deleted_at.is_(None),
                a.id != new.id,
                ~artifact_in_use(a.id),
            )
        ).all()
        earlier = [r for r in rows if loads(r.metadata).get("best") is True]
        if not earlier:
            return
        stamp = now()
        conn.execute(
            update(t.artifacts).where(a.id.in_([r.id for r in earlier])).values(deleted_at=stamp)
        )
        self._audit(
            conn,
            "artifact.superseded",
            "artifact",
            f"{new.project}/{new.name}/{new.version}",
            project=new.project,
            after={"deleted_versions": sorted(r.version for r in earlier), "run_id": run_id},
        )

    def get_artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact:
        name = v.name(name, "artifact name")
        wanted = v.version(version)
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            found = self._version_id(conn, t.artifacts, project_id, name, wanted)
            if found is None:
                a = t.artifacts.c
                deleted = (
                    wanted is not None
                    and conn.execute(
                        select(a.id).where(
                            a.project_id == project_id, a.name == name, a.version == wanted
                        )
                    ).first()
                )
                hint = (
                    f" (it was deleted: registrum artifacts restore {project} {name}:{wanted})"
                    if deleted
                    else ""
                )
                raise ArtifactNotFound(
                    f"artifact {name!r} version {version} does not exist in project "
                    f"{project!r}{hint}",
                    name=name,
                )
            return self._load_artifact(conn, found)

    def get_artifact_by_id(self, artifact_id: int) -> Artifact:
        v.integer(artifact_id, "artifact id", minimum=1)
        with self._read() as conn:
            return self._load_artifact(conn, artifact_id, need="viewer")

    def list_artifacts(
        self,
        project: str,
        *,
        name: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[Artifact]:
        """Artifact versions of a project, newest first, without their file lists (deleted
        ones only with `include_deleted`); `limit`/`offset` select one page."""
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer", deleted_ok=include_deleted)
            a = t.artifacts.c
            query = select(t.artifacts).where(a.project_id == project_id)
            if not include_deleted:
                query = query.where(a.deleted_at.is_(None))
            if name is not None:
                query = query.where(a.name == v.name(name, "artifact name"))
            if run_id is not None:
                query = query.where(a.run_id == run_id)
            query = query.order_by(a.created_at.desc(), a.id.desc())
            rows = conn.execute(self._window(query, limit, offset)).all()
            return [_artifact(r, project, []) for r in rows]

    def _load_artifact(
        self, conn: Connection, artifact_id: int, *, need: str | None = None
    ) -> Artifact:
        """An artifact with its files; with `need`, the signed-in user must hold that role
        on its project."""
        row = conn.execute(_ARTIFACT, {"id": artifact_id}).first()
        if row is None:
            raise ArtifactNotFound(
                f"artifact {artifact_id} does not exist", artifact_id=artifact_id
            )
        if need is not None:
            self._require(conn, row.project_id, need, name=row.project)
        files = [
            ArtifactFile(path=path, sha256=sha256, size=int(size))
            for path, sha256, size in conn.execute(_ARTIFACT_FILES, {"id": artifact_id}).all()
        ]
        return _artifact(row, row.project, files)


def _artifact(row: Any, project: str, files: list[ArtifactFile]) -> Artifact:
    return Artifact(
        id=row.id,
        project=project,
        name=row.name,
        version=row.version,
        type=row.type,
        digest=row.digest,
        run_id=row.run_id,
        size=int(row.size),
        file_count=row.file_count,
        metadata=loads(row.metadata),
        created_at=row.created_at,
        files=files,
        deleted_at=row.deleted_at,
    )
