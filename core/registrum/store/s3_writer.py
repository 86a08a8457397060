"""Streaming one blob into an S3 bucket from this process (the embedded store, proxied
uploads): a multipart upload under `.uploads/`, hashed on the way, published in place."""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from registrum import validation
from registrum.entities import BlobInfo
from registrum.errors import InvalidArgument
from registrum.store.blobs import BlobWriter, check_digest
from registrum.store.s3_client import s3_error

if TYPE_CHECKING:
    from registrum.store.blobs_s3 import S3BlobStore

WRITE_PART = 8 << 20  # the part size of a blob streamed through this process


class S3BlobWriter(BlobWriter):
    """Streams a blob as a multipart upload (a small blob goes in one PUT at commit), hashing
    on the way; one part is sent on a thread of its own while the next fills. Commit
    publishes the upload in place under the hash (a pointer, no copy), or drops it when the
    blob is there already."""

    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        from registrum.store.blobs_s3 import new_staging_name

        self._name = new_staging_name()
        self._key = store.upload_key(self._name)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sending: Future[dict[str, Any]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._open = True

    def write(self, data: bytes) -> None:
        if not self._open:
            raise InvalidArgument("this blob writer is already committed or aborted")
        try:
            self._hash.update(data)
            self._size += len(data)
            self._buffer += data
            while len(self._buffer) >= WRITE_PART:
                part, self._buffer = self._buffer[:WRITE_PART], self._buffer[WRITE_PART:]
                self._send(bytes(part))
        except Exception:
            self.abort()
            raise

    def _send(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._store.create_upload(self._key)
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="registrum-s3")
        self._collect()
        number = len(self._parts) + 1
        assert self._pool is not None
        self._sending = self._pool.submit(self._upload_part, number, part)

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        try:
            answer = self._store.client.upload_part(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ChecksumAlgorithm="CRC32",
            )
        except Exception as exc:
            raise s3_error(exc, "upload a part") from None
        return {
            "PartNumber": number,
            "ETag": answer["ETag"],
            "ChecksumCRC32": answer.get("ChecksumCRC32"),
        }

    def _collect(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            self._parts.append(sending.result())

    def commit(self, expected_sha256: str | None = None) -> BlobInfo:
        if not self._open:
            raise InvalidArgument("this blob writer is already committed or aborted")
        try:
            if expected_sha256 is not None:
                validation.sha256(expected_sha256)
            digest = self._hash.hexdigest()
            check_digest(digest, expected_sha256)
            if self._upload_id is None:
                if not self._store.exists(digest):
                    self._store.put_small(digest, bytes(self._buffer))
            else:
                if self._buffer:
                    self._send(bytes(self._buffer))
                    self._buffer = bytearray()
                self._collect()
                self._store.complete(self._key, self._upload_id, self._parts)
                self._upload_id = None
                self._store.publish_in_place(self._name, digest, self._size)
            return BlobInfo(digest, self._size)
        finally:
            self.abort()

    def abort(self) -> None:
        if not self._open:
            return
        self._open = False
        self._buffer = bytearray()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._collect()
            self._pool.shutdown()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id
                )
            self._upload_id = None
