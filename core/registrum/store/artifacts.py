"""Blobs, and artifacts: versioned file manifests over them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from registrum.entities import Artifact, ArtifactFile
from registrum.errors import (
    ArtifactNotFound,
    BlobNotFound,
    Forbidden,
    InvalidArgument,
    StoreError,
)
from registrum.store import schema as t
from registrum.store import validation as v
from registrum.store._base import RETRIES, StoreBase, json_object, loads, now
from registrum.store.blobs import BlobInfo, BlobWriter
from registrum.store.principal import current_principal


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
                size=v.integer(f.get("size"), f"files[{i}].size", minimum=0),
            )
        )
    return out


class ArtifactsMixin(StoreBase):
    # -- blobs ----------------------------------------------------------------

    def put_blob(
        self, stream: BinaryIO | Iterable[bytes], *, sha256: str | None = None
    ) -> BlobInfo:
        """Streams content into the blob store; with `sha256`, verifies it first."""
        if sha256 is not None:
            v.sha256(sha256)
            if self.blobs.exists(sha256):
                return BlobInfo(sha256=sha256, size=self.blobs.size(sha256))
        info = self.blobs.put(stream, expected_sha256=sha256)
        self._record_blob(info)
        return info

    def open_blob_writer(self) -> BlobWriter:
        """A writer to stream one blob into; finish it with `commit_blob`."""
        return self.blobs.begin()

    def commit_blob(self, writer: BlobWriter, *, sha256: str | None = None) -> BlobInfo:
        """Verifies and publishes what was written; a wrong `sha256` publishes nothing."""
        if sha256 is not None:
            v.sha256(sha256)
        info = writer.commit(sha256)
        self._record_blob(info)
        return info

    # Blobs are content-addressed and shared by every project: any signed-in user may upload
    # one, ask whether one exists and how large it is; reading one needs viewer on a project
    # that holds it (in an artifact, or as a run's uncommitted code diff).

    def blob_exists(self, sha256: str) -> bool:
        return self.blobs.exists(v.sha256(sha256))

    def missing_blobs(self, sha256s: Sequence[str]) -> list[str]:
        """The digests among `sha256s` that are not stored yet (what a client must upload)."""
        if not isinstance(sha256s, Sequence) or isinstance(sha256s, str):
            raise InvalidArgument("sha256s must be a list of digests")
        return [s for s in dict.fromkeys(v.sha256(x) for x in sha256s) if not self.blobs.exists(s)]

    def blob_size(self, sha256: str) -> int:
        return self.blobs.size(v.sha256(sha256))

    def read_blob(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes start..end (inclusive) of a blob, streamed in chunks."""
        v.sha256(sha256)
        if current_principal() is not None:
            with self._read() as conn:
                self._require_blob(conn, sha256)
        return self.blobs.iter_range(sha256, start, end)

    def _require_blob(self, conn: Connection, sha256: str) -> None:
        """Raises `Forbidden` unless the signed-in user may read a project holding the blob."""
        visible = self._visible_projects(conn)
        if visible is None:
            return
        f, a = t.artifact_files.c, t.artifacts.c
        held = conn.execute(
            select(a.id)
            .join(t.artifact_files, f.artifact_id == a.id)
            .where(f.sha256 == sha256, a.project_id.in_(visible))
            .limit(1)
        ).first()
        if held is None:
            c, r = t.code_versions.c, t.runs.c
            held = conn.execute(
                select(r.id)
                .join(t.code_versions, c.run_id == r.id)
                .where(c.diff_sha256 == sha256, r.project_id.in_(visible))
                .limit(1)
            ).first()
        if held is None:
            raise Forbidden(
                f"blob {sha256} is in no project you can read; "
                "ask a project admin for viewer on the project that holds it",
                sha256=sha256,
            )

    def _record_blob(self, info: BlobInfo) -> None:
        with self._tx() as conn:
            created = conn.execute(
                self._insert(t.blobs)
                .values(sha256=info.sha256, size=info.size, created_at=now())
                .on_conflict_do_nothing(index_elements=["sha256"])
                .returning(t.blobs.c.sha256)
            ).first()
            if created is not None:
                self._audit(conn, "blob.stored", "blob", info.sha256, after={"size": info.size})

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
        v.name(project, "project name")
        v.name(name, "artifact name")
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
        self, files: Sequence[Mapping[str, Any]]
    ) -> tuple[list[ArtifactFile], str]:
        """A checked manifest whose every blob is stored with its declared size, and its digest."""
        manifest = _check_manifest(files)
        for f in manifest:
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
        a = t.artifacts.c
        same = conn.execute(
            select(a.id)
            .where(a.project_id == project_id, a.name == name, a.digest == digest)
            .limit(1)
        ).scalar()
        if same is not None:
            return self._load_artifact(conn, int(same))
        conn.execute(
            self._insert(t.blobs).on_conflict_do_nothing(index_elements=["sha256"]),
            [{"sha256": f.sha256, "size": f.size, "created_at": now()} for f in manifest],
        )
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

    def get_artifact(self, project: str, name: str, version: int | str = "latest") -> Artifact:
        wanted = v.version(version)
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            found = self._version_id(conn, t.artifacts, project_id, name, wanted)
            if found is None:
                raise ArtifactNotFound(
                    f"artifact {name!r} version {version} does not exist in project {project!r}",
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
    ) -> list[Artifact]:
        """Artifact versions of a project, newest first, without their file lists;
        `limit`/`offset` select one page."""
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            a = t.artifacts.c
            query = select(t.artifacts).where(a.project_id == project_id)
            if name is not None:
                query = query.where(a.name == name)
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
        row = conn.execute(
            select(t.artifacts, t.projects.c.name.label("project"))
            .join(t.projects, t.projects.c.id == t.artifacts.c.project_id)
            .where(t.artifacts.c.id == artifact_id)
        ).first()
        if row is None:
            raise ArtifactNotFound(
                f"artifact {artifact_id} does not exist", artifact_id=artifact_id
            )
        if need is not None:
            self._require(conn, row.project_id, need, name=row.project)
        files = [
            ArtifactFile(path=f.path, sha256=f.sha256, size=int(f.size))
            for f in conn.execute(
                select(t.artifact_files)
                .where(t.artifact_files.c.artifact_id == artifact_id)
                .order_by(t.artifact_files.c.path)
            )
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
    )
