"""Blobs in the service layer: upload, download, and who may read or reference one by hash.

Blobs are content-addressed and shared by every project, so knowing a sha256 must not be
enough to read another project's bytes. With somebody signed in, a principal may *use* a
blob (read it, or name its sha256 in an artifact manifest, a model registration or a run's
code diff) only when

* it uploaded those bytes itself: each upload records a grant (sha256, user) in the
  database, so the rule holds across server replicas; or
* it may read a project whose entities reference the blob (an artifact file, a model
  version's files, a run's uncommitted diff, a file of a run's file tree or of a logged
  model).

Everything else answers as if the blob were not stored: `HEAD`/`GET` give 404 and
`missing_blobs` lists it as missing, so the client uploads it and thereby proves that it
holds the bytes (an upload of content that is already stored writes nothing new, but
records the grant). A principal that may read a blob may also reference it elsewhere: it
could download and upload the same bytes anyway. Nothing is cached: a member removed from
a project loses its blobs at the next request. With nobody signed in (the embedded store,
a server without `--auth`) every blob is usable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from sqlalchemy import Connection, Select, select, update

from registrum import validation as v
from registrum.entities import BlobInfo
from registrum.errors import BlobNotFound, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.acting import current_principal
from registrum.store.blobs import PARTIAL_MAX_AGE, BlobWriter

_BATCH = 500  # digests per IN (...) list, well under SQLite's parameter limit


class BlobsMixin(StoreBase):
    # -- writing ----------------------------------------------------------------------

    def put_blob(
        self, stream: BinaryIO | Iterable[bytes], *, sha256: str | None = None
    ) -> BlobInfo:
        """Streams content into the blob store; with `sha256`, verifies it first. Content
        the caller may use already is not read again."""
        if sha256 is not None:
            v.sha256(sha256)
            if self.blob_exists(sha256):
                return BlobInfo(sha256=sha256, size=self.blobs.size(sha256))
        info = self.blobs.put(stream, expected_sha256=sha256)
        self._record_blob(info)
        return info

    def open_blob_writer(self) -> BlobWriter:
        """A writer to stream one blob into; finish it with `commit_blob`."""
        return self.blobs.begin()

    def commit_blob(self, writer: BlobWriter, *, sha256: str | None = None) -> BlobInfo:
        """Verifies and publishes what was written; a wrong `sha256` publishes nothing.
        The signed-in user may use the blob from now on: it sent the bytes."""
        if sha256 is not None:
            v.sha256(sha256)
        info = writer.commit(sha256)
        self._record_blob(info)
        return info

    def sweep_partial_uploads(self, older_than_seconds: float = PARTIAL_MAX_AGE) -> int:
        """Removes partial uploads that no live writer has touched for `older_than_seconds`
        (left by a process that died mid-upload); returns how many went."""
        v.number(older_than_seconds, "older_than_seconds")
        return self.blobs.cleanup_temp(older_than_seconds)

    def _record_blob(self, info: BlobInfo) -> None:
        principal = current_principal()
        with self._tx() as conn:
            stamp = now()
            created = conn.execute(
                self._insert(t.blobs)
                .values(sha256=info.sha256, size=info.size, created_at=stamp, used_at=stamp)
                .on_conflict_do_nothing(index_elements=["sha256"])
                .returning(t.blobs.c.sha256)
            ).first()
            if created is None:  # stored again: used now (a collection under way spares it)
                conn.execute(
                    update(t.blobs).where(t.blobs.c.sha256 == info.sha256).values(used_at=stamp)
                )
            if created is not None:
                self._audit(conn, "blob.stored", "blob", info.sha256, after={"size": info.size})
            if principal is not None:
                conn.execute(
                    self._insert(t.blob_grants)
                    .values(sha256=info.sha256, user_id=principal.user_id, created_at=now())
                    .on_conflict_do_nothing(index_elements=["sha256", "user_id"])
                )

    def _claim_blobs(self, conn: Connection, sizes: Mapping[str, int | None]) -> None:
        """Marks blobs used now, in the transaction that comes to reference them, so that a
        garbage collection at the same time spares them (store/gc.py): a collection that
        reaches the row first has its delete wait for this transaction and then sees the
        new use; one that removed a blob first leaves no row, and the bytes are checked and
        refused (`BlobNotFound`) when gone. Nothing comes to reference missing bytes."""
        wanted = sorted(sizes)  # one order for every writer: row locks taken alike
        b = t.blobs.c
        stamp = now()
        held: set[str] = set()
        for i in range(0, len(wanted), _BATCH):
            batch = wanted[i : i + _BATCH]
            held.update(
                conn.execute(
                    update(t.blobs)
                    .where(b.sha256.in_(batch))
                    .values(used_at=stamp)
                    .returning(b.sha256)
                ).scalars()
            )
        for sha256 in wanted:
            if sha256 in held:
                continue
            if not self.blobs.exists(sha256):
                raise BlobNotFound(
                    f"blob {sha256} is not stored (never uploaded, or collected since): "
                    "upload it (again)",
                    sha256=sha256,
                )
            size = sizes[sha256]
            conn.execute(
                self._insert(t.blobs)
                .values(
                    sha256=sha256,
                    size=self.blobs.size(sha256) if size is None else size,
                    created_at=stamp,
                    used_at=stamp,
                )
                .on_conflict_do_update(index_elements=["sha256"], set_={"used_at": stamp})
            )

    # -- reading (all answer "not stored" for a blob the caller may not use) -----------

    def blob_exists(self, sha256: str) -> bool:
        """Whether the blob is stored and the signed-in user may use it."""
        v.sha256(sha256)
        if not self.blobs.exists(sha256):
            return False
        if current_principal() is None:
            return True
        with self._read() as conn:
            return bool(self._usable_blobs(conn, [sha256]))

    def missing_blobs(self, sha256s: Sequence[str]) -> list[str]:
        """The digests among `sha256s` that the caller must upload: those not stored, and
        those the signed-in user may not use yet (sending them proves it holds the bytes)."""
        if not isinstance(sha256s, Sequence) or isinstance(sha256s, str):
            raise InvalidArgument("sha256s must be a list of digests")
        wanted = list(dict.fromkeys(v.sha256(x) for x in sha256s))
        stored = [s for s in wanted if self.blobs.exists(s)]
        if current_principal() is not None and stored:
            with self._read() as conn:
                usable = self._usable_blobs(conn, stored)
            stored = [s for s in stored if s in usable]
        have = set(stored)
        return [s for s in wanted if s not in have]

    def blob_size(self, sha256: str) -> int:
        """The blob's size; `BlobNotFound` when it is not stored or not the caller's to use."""
        if not self.blob_exists(sha256):
            raise _not_found(sha256)
        return self.blobs.size(sha256)

    def read_blob(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes start..end (inclusive) of a blob, streamed in chunks; `BlobNotFound`
        when it is not stored or not the caller's to use."""
        if not self.blob_exists(sha256):
            raise _not_found(sha256)
        return self.blobs.iter_range(sha256, start, end)

    # -- the rule ---------------------------------------------------------------------

    def _unusable_blob(self, conn: Connection, sha256s: Collection[str]) -> str | None:
        """The first of `sha256s` the signed-in user may not reference, if any. Callers
        refuse it with `BlobNotFound`, the answer for a blob never stored, so that the
        refusal confirms nothing."""
        if current_principal() is None or not sha256s:
            return None
        usable = self._usable_blobs(conn, sha256s)
        return next((s for s in sha256s if s not in usable), None)

    def _usable_blobs(self, conn: Connection, sha256s: Iterable[str]) -> set[str]:
        """Which of `sha256s` the signed-in user uploaded itself or can read through a
        project it is a member of (each role includes viewer); all, for a server admin or
        with nobody signed in."""
        wanted = list(dict.fromkeys(sha256s))
        principal = current_principal()
        if principal is None or principal.server_admin:
            return set(wanted)
        g, f, a = t.blob_grants.c, t.artifact_files.c, t.artifacts.c
        c, r, m = t.code_versions.c, t.runs.c, t.memberships.c
        rf, mf, lm = t.run_files.c, t.logged_model_files.c, t.logged_models.c
        member_of: Any = select(m.project_id).where(m.user_id == principal.user_id)
        if principal.scope is not None:  # a scoped token reads its project's alone
            member_of = self._visible_projects(conn) or []
        # Cheapest first; each asks only for the digests the ones before did not find.
        sources: tuple[Callable[[list[str]], Select[Any]], ...] = (
            lambda batch: select(g.sha256).where(
                g.user_id == principal.user_id, g.sha256.in_(batch)
            ),
            lambda batch: (
                select(f.sha256)
                .join(t.artifacts, a.id == f.artifact_id)
                .where(f.sha256.in_(batch), a.project_id.in_(member_of))
            ),
            lambda batch: (
                select(c.diff_sha256)
                .join(t.runs, r.id == c.run_id)
                .where(c.diff_sha256.in_(batch), r.project_id.in_(member_of))
            ),
            lambda batch: (
                select(rf.sha256)
                .join(t.runs, r.id == rf.run_id)
                .where(rf.sha256.in_(batch), r.project_id.in_(member_of))
            ),
            lambda batch: (
                select(mf.sha256)
                .join(t.logged_models, lm.id == mf.model_id)
                .where(mf.sha256.in_(batch), lm.project_id.in_(member_of))
            ),
        )
        found: set[str] = set()
        for i in range(0, len(wanted), _BATCH):
            for source in sources:
                batch = [s for s in wanted[i : i + _BATCH] if s not in found]
                if not batch:
                    break
                found.update(conn.execute(source(batch).distinct()).scalars())
        return found


def _not_found(sha256: str) -> BlobNotFound:
    return BlobNotFound(f"blob {sha256} is not stored", sha256=sha256)
