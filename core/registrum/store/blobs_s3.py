"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS interoperability) over boto3.

Blobs live under `s3://BUCKET/PREFIX/<sha[:2]>/<sha>`. Nothing reaches that key before its
content was hashed and checked. A small blob is written there in one PUT. A large one is a
multipart upload to a key of its own under `PREFIX/.uploads/` (streamed and hashed on the
way, or sent by a client and read back by the server), and is published in place: the
blob's key then holds an empty pointer object whose metadata names that upload, so the
bytes are never copied inside the bucket. Only the server can write either key: a client
sending bytes directly holds presigned URLs for the parts of one upload, which die when the
server completes it. Single PUTs from clients go to `PREFIX/.staging/` and are published by
a copy (their presigned URL stays valid for its hour, so the object must not stay in use).
Credentials, region and endpoint come from the standard AWS chain and variables
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from registrum import validation
from registrum.errors import BlobNotFound, StoreUnavailable
from registrum.store.blobs import (
    CHUNK_SIZE,
    PARTIAL_MAX_AGE,
    BlobStore,
    BlobWriter,
    read_span,
)
from registrum.store.s3_client import (
    PUBLIC_URL,
    BodyReader,
    b64,
    code,
    completed_part,
    is_missing,
    make_client,
    parse_s3_url,
    s3_error,
)
from registrum.store.s3_writer import WRITE_PART, S3BlobWriter

__all__ = [
    "UPLOAD_NAME",
    "WRITE_PART",
    "S3BlobStore",
    "b64",
    "new_staging_name",
    "parse_s3_url",
]

STAGING = ".staging/"  # beside the two-hex-digit folders, which it cannot collide with
UPLOADS = ".uploads/"  # multipart uploads: in progress, being checked, or a blob's content
_COPY_CHUNK = 1 << 30  # above this a publish copies in parallel parts
# The metadata of a pointer object at a blob's key: the upload that holds the bytes, and
# their size (the pointer itself is empty).
_AT, _SIZE = "registrum-upload", "registrum-size"
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}")  # what new_staging_name makes


class S3BlobStore(BlobStore):
    """Blobs in `bucket` under `prefix` (`""` or ending in "/").

    Args:
        bucket: the bucket; it must exist (`check` says so clearly at start).
        prefix: the key prefix every blob and staging object lives under.
        client: a boto3 S3 client; default one from the standard AWS chain.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client if client is not None else make_client()
        # Presigned URLs name the endpoint clients reach, where the server reaches the
        # bucket by another name (a container network): signing needs no connection.
        public = os.environ.get(PUBLIC_URL)
        self.signer = make_client(public) if public and client is None else self.client
        self._enforces: bool | None = None

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3BlobStore:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, client=client)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, sha256: str) -> str:
        """The object key that holds (or would hold) the blob."""
        validation.sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def staging_key(self, name: str) -> str:
        return f"{self.prefix}{STAGING}{name}"

    def upload_key(self, name: str) -> str:
        """Where a multipart upload named `name` goes, and where its bytes stay."""
        return f"{self.prefix}{UPLOADS}{name}"

    def check(self) -> None:
        """Raises StoreUnavailable, saying what to fix, when the bucket is missing or the
        credentials do not open it: at start, not as a failed upload later."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if code(exc) in {"404", "NoSuchBucket"}:
                raise StoreUnavailable(
                    f"the bucket {self.bucket!r} does not exist (blob store {self.url}); "
                    "create it, or correct --blobs / REGISTRUM_BLOBS"
                ) from None
            raise s3_error(exc, f"open the bucket {self.bucket!r}") from None

    # -- the BlobStore interface ------------------------------------------------------

    def begin(self) -> BlobWriter:
        return S3BlobWriter(self)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise s3_error(exc, "look up a blob") from None
        return answer

    def exists(self, sha256: str) -> bool:
        return self._head(self.key(sha256)) is not None

    def size(self, sha256: str) -> int:
        return self.located(sha256)[1]

    def located(self, sha256: str) -> tuple[str, int]:
        """The key that holds the blob's bytes (its own, or the upload its pointer names)
        and their size; BlobNotFound when it is not stored."""
        head = self._head(self.key(sha256))
        if head is None:
            raise _not_found(sha256)
        found = _pointer(head)
        if found is None:
            return self.key(sha256), int(head["ContentLength"])
        return self.upload_key(found[0]), found[1]

    def _get(self, sha256: str, byte_range: str | None = None) -> Any:
        args = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if byte_range:
            args["Range"] = byte_range
        try:
            try:
                answer = self.client.get_object(**args)
            except Exception as exc:
                if code(exc) != "InvalidRange":
                    raise
                answer = None  # a range of an empty object: a pointer (or an empty blob)
            found = None if answer is None else _pointer(answer)
            if answer is None or found is not None:
                if answer is not None:
                    answer["Body"].close()
                args["Key"] = self.upload_key(found[0]) if found else self.located(sha256)[0]
                answer = self.client.get_object(**args)
            return answer["Body"]
        except BlobNotFound:
            raise
        except Exception as exc:
            if is_missing(exc):
                raise _not_found(sha256) from None
            raise s3_error(exc, "read a blob") from None

    def open(self, sha256: str) -> BinaryIO:
        return io.BufferedReader(BodyReader(self._get(sha256)), CHUNK_SIZE)

    def _iter(self, sha256: str, start: int, length: int, chunk_size: int) -> Iterator[bytes]:
        # One ranged GET, opened lazily: a generator never started opens no connection.
        body = self._get(sha256, f"bytes={start}-{start + length - 1}")
        try:
            yield from read_span(body, length, chunk_size)
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        key = self.key(sha256)
        try:
            head = self._head(key)
            found = None if head is None else _pointer(head)
            self.client.delete_object(Bucket=self.bucket, Key=key)
            if found is not None:  # the pointer first: never a pointer to nothing
                self.client.delete_object(Bucket=self.bucket, Key=self.upload_key(found[0]))
        except Exception as exc:
            if not is_missing(exc):
                raise s3_error(exc, "delete a blob") from None

    def cleanup_temp(self, older_than_seconds: float = PARTIAL_MAX_AGE) -> int:
        """Aborts multipart uploads with no part sent for `older_than_seconds` and removes
        staging objects as old (their writer or client died); returns how many went. A
        completed upload under `.uploads/` stays: it holds a blob, or waits for its check."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        staging = self.staging_key("")
        try:
            for prefix in (staging, self.upload_key("")):
                for upload in self._paged("list_multipart_uploads", "Uploads", Prefix=prefix):
                    started = max(upload["Initiated"].timestamp(), _named_at(upload["Key"]))
                    if started < cutoff and self._idle_since(upload, cutoff):
                        with contextlib.suppress(Exception):
                            self.client.abort_multipart_upload(
                                Bucket=self.bucket,
                                Key=upload["Key"],
                                UploadId=upload["UploadId"],
                            )
                            removed += 1
            for item in self._paged("list_objects_v2", "Contents", Prefix=staging):
                if item["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        except Exception as exc:
            raise s3_error(exc, "sweep stale uploads") from None
        return removed

    def stored(self) -> Iterator[tuple[str, int, float]]:
        """The blob keys (`ab/<sha256>`) under the prefix, as listed: a pointer object (a
        large blob published in place) lists 0 bytes, and its size is not looked up."""
        try:
            for item in self._paged("list_objects_v2", "Contents", Prefix=self.prefix):
                sha256 = _blob_of(item["Key"][len(self.prefix) :])
                if sha256 is not None:
                    yield sha256, int(item["Size"]), item["LastModified"].timestamp()
        except Exception as exc:
            raise s3_error(exc, "list the blobs") from None

    def sweep_unpublished(
        self, older_than_seconds: float, *, dry_run: bool = False
    ) -> tuple[int, int]:
        """Removes finished uploads under `.uploads/` that no pointer names and that are older
        than `older_than_seconds` (their server died before publishing them). The pointers
        are read (one HEAD each) only when such old uploads exist."""
        cutoff = time.time() - older_than_seconds
        try:
            old = {
                item["Key"].rsplit("/", 1)[-1]: item
                for item in self._paged("list_objects_v2", "Contents", Prefix=self.upload_key(""))
                if max(item["LastModified"].timestamp(), _named_at(item["Key"])) < cutoff
            }
            if not old:
                return 0, 0
            for item in self._paged("list_objects_v2", "Contents", Prefix=self.prefix):
                if item["Size"] == 0 and _blob_of(item["Key"][len(self.prefix) :]):
                    head = self._head(item["Key"])
                    found = None if head is None else _pointer(head)
                    if found is not None:
                        old.pop(found[0], None)
            for item in old.values():
                if not dry_run:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise s3_error(exc, "sweep unpublished uploads") from None
        return len(old), sum(int(item["Size"]) for item in old.values())

    def _idle_since(self, upload: dict[str, Any], cutoff: float) -> bool:
        """Whether no part of a multipart upload arrived after `cutoff` (a slow live one,
        or one a client resumed, keeps sending parts)."""
        parts = self.list_parts(upload["Key"], upload["UploadId"])
        return all(p["LastModified"].timestamp() < cutoff for p in parts)

    def _paged(self, operation: str, field: str, **args: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator(operation)
        for page in paginator.paginate(Bucket=self.bucket, **args):
            yield from page.get(field, [])

    # -- staging, publishing, presigning (also for direct transfers) ------------------

    def put_small(self, sha256: str, data: bytes) -> None:
        """Writes content this process hashed itself straight under its key."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(sha256), Body=data, ChecksumSHA256=b64(sha256)
            )
        except Exception as exc:
            raise s3_error(exc, "store a blob") from None

    def create_upload(self, key: str) -> str:
        """A multipart upload whose parts each carry a CRC32 the bucket checks (as the AWS
        SDKs send by default): a part damaged on the way is refused as it arrives."""
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32"
            )
            return str(created["UploadId"])
        except Exception as exc:
            raise s3_error(exc, "start an upload") from None

    def list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        """The parts of a multipart upload that arrived, by number; NotFound when the upload
        is gone (completed, aborted or swept)."""
        try:
            return list(self._paged("list_parts", "Parts", Key=key, UploadId=upload_id))
        except Exception as exc:
            if is_missing(exc):
                raise BlobNotFound("this upload is not in progress (finished, or swept)") from None
            raise s3_error(exc, "list an upload's parts") from None

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [completed_part(p) for p in parts]},
            )
        except Exception as exc:
            raise s3_error(exc, "complete an upload") from None

    def staged_checksum(self, key: str) -> tuple[int, str | None] | None:
        """A staging object's size and the sha256 checksum (base64) the bucket verified for
        it, if any; None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if is_missing(exc):
                return None
            raise s3_error(exc, "look up an upload") from None
        return int(head["ContentLength"]), head.get("ChecksumSHA256")

    def staged_size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def hash_staged(self, key: str) -> tuple[str, int]:
        """The sha256 and size of a staging object, read back streamed: the check a
        multipart upload needs, as S3 only keeps per-part checksums for it."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            raise s3_error(exc, "read back an upload") from None
        h, size = hashlib.sha256(), 0
        # The next chunk arrives on a thread while this one is hashed (both release the GIL).
        with body, ThreadPoolExecutor(1, thread_name_prefix="registrum-read") as reader:
            chunk = body.read(4 * CHUNK_SIZE)
            while chunk:
                coming = reader.submit(body.read, 4 * CHUNK_SIZE)
                h.update(chunk)
                size += len(chunk)
                chunk = coming.result()
        return h.hexdigest(), size

    def publish(self, staging: str, sha256: str, size: int) -> None:
        """Copies a checked staging object to the blob's key (inside the bucket), unless the
        blob is there already, then removes the staging object."""
        try:
            if not self.exists(sha256):
                source = {"Bucket": self.bucket, "Key": staging}
                if size <= _COPY_CHUNK:
                    self.client.copy_object(
                        Bucket=self.bucket, Key=self.key(sha256), CopySource=source
                    )
                else:
                    from boto3.s3.transfer import TransferConfig

                    self.client.copy(
                        source,
                        self.bucket,
                        self.key(sha256),
                        Config=TransferConfig(multipart_chunksize=256 << 20),
                    )
            self.client.delete_object(Bucket=self.bucket, Key=staging)
        except Exception as exc:
            raise s3_error(exc, "publish a blob") from None

    def publish_in_place(self, name: str, sha256: str, size: int) -> None:
        """Publishes the checked, completed upload `name` without copying it: the blob's key
        gets a pointer to it. Where the blob is stored already the upload is removed, unless
        that pointer names it (a second check of the same upload)."""
        key = self.key(sha256)
        try:
            head = self._head(key)
            if head is None:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=b"",
                    Metadata={_AT: name, _SIZE: str(size)},
                )
            elif (found := _pointer(head)) is None or found[0] != name:
                self.client.delete_object(Bucket=self.bucket, Key=self.upload_key(name))
        except Exception as exc:
            raise s3_error(exc, "publish a blob") from None

    def list_staged(self) -> Iterator[dict[str, Any]]:
        """The objects under the staging prefix (uploads, their claims)."""
        try:
            yield from self._paged("list_objects_v2", "Contents", Prefix=self.staging_key(""))
        except Exception as exc:
            raise s3_error(exc, "list staged uploads") from None

    def read_small(self, key: str) -> bytes | None:
        """A small object's bytes (an upload's claim), or None when there is none."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except Exception as exc:
            if is_missing(exc):
                return None
            raise s3_error(exc, "read an upload's record") from None

    def write_small(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as exc:
            raise s3_error(exc, "record an upload") from None

    def remove(self, key: str) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def presign(self, operation: str, expires: int, **params: Any) -> str:
        return str(
            self.signer.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires
            )
        )

    def enforces_checksums(self) -> bool:
        """Whether the bucket refuses a PUT whose body does not match its
        `x-amz-checksum-sha256` (AWS S3 does; some S3-compatible stores and emulators
        ignore it, and then a single PUT is verified by reading it back). Probed once."""
        if self._enforces is None:
            key = self.staging_key(f"probe-{secrets.token_hex(8)}")
            wrong = b64(hashlib.sha256(b"not the body").hexdigest())
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=b"probe", ChecksumSHA256=wrong
                )
            except Exception as exc:
                status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {})
                if code(exc) != "BadDigest" and status.get("HTTPStatusCode") != 400:
                    raise s3_error(exc, "probe the object store") from None
                self._enforces = True  # refused as a bad request: the bytes were checked
            else:
                self._enforces = False
            self.remove(key)
        return self._enforces


def new_staging_name() -> str:
    """A staging object's name: 32 hex digits, the first 8 the time it was made (seconds), so
    a sweep knows an upload's age even where a store reports none (moto's `Initiated` is a
    fixed date), the rest random."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(12)}"


def _named_at(key: str) -> float:
    """When the staging object `key` was named (0 for a name of another form)."""
    name = key.rsplit("/", 1)[-1]
    try:
        return float(int(name[:8], 16)) if len(name) >= 32 else 0.0
    except ValueError:
        return 0.0


def _blob_of(relative: str) -> str | None:
    """The sha256 a key below the prefix holds (`ab/<sha256>`), else None."""
    folder, _, name = relative.partition("/")
    if len(name) == 64 and name.startswith(folder) and len(folder) == 2:
        return name
    return None


def _pointer(answer: dict[str, Any]) -> tuple[str, int] | None:
    """The upload a pointer object names and the blob's size; None for a blob's own bytes."""
    meta = answer.get("Metadata") or {}
    name, size = meta.get(_AT), str(meta.get(_SIZE, ""))
    if name is None:
        return None
    if not UPLOAD_NAME.fullmatch(name) or not size.isdigit():
        raise StoreUnavailable(f"a blob's pointer object is damaged ({name!r}, {size!r})")
    return str(name), int(size)


def _not_found(sha256: str) -> BlobNotFound:
    return BlobNotFound(f"blob {sha256} is not stored", sha256=sha256)
