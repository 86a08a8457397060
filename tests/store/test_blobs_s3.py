"""What only the S3 backend has: staging multipart uploads, publishing by copy, the sweep of
uploads whose writer died, and its URL. The shared contract runs in test_blobs.py."""

from __future__ import annotations

import hashlib
import os

import pytest

from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from registrum.errors import HashMismatch, InvalidArgument
from registrum.store.blobs_s3 import WRITE_PART, S3BlobStore, parse_s3_url


@pytest.fixture
def store(s3_bucket: str) -> S3BlobStore:  # noqa: F811
    return S3BlobStore(s3_bucket, "/nested/prefix/")


def staged(store: S3BlobStore) -> tuple[list[str], list[str]]:
    """Objects and multipart uploads under the staging prefix."""
    prefix = store.staging_key("")
    s3 = store.client
    objects = s3.list_objects_v2(Bucket=store.bucket, Prefix=prefix).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in objects], [u["Key"] for u in uploads]


def test_a_large_blob_streams_through_staging_and_is_published_by_copy(
    store: S3BlobStore,
) -> None:
    data = os.urandom(2 * WRITE_PART + 5)
    sha = hashlib.sha256(data).hexdigest()
    with store.begin() as writer:
        for i in range(0, len(data), 3 << 20):
            writer.write(data[i : i + (3 << 20)])
            if i > WRITE_PART:  # a part went: an upload to a staging key is open
                assert staged(store)[1]
        writer.commit(sha)
    assert store.key(sha) == f"nested/prefix/{sha[:2]}/{sha}"
    assert b"".join(store.iter_range(sha)) == data
    assert staged(store) == ([], [])


def test_a_large_mismatch_or_abort_leaves_nothing(store: S3BlobStore) -> None:
    data = os.urandom(WRITE_PART + 1)
    writer = store.begin()
    writer.write(data)
    with pytest.raises(HashMismatch):
        writer.commit("0" * 64)
    with store.begin() as dropped:
        dropped.write(data)
    assert staged(store) == ([], [])
    assert not store.exists(hashlib.sha256(data).hexdigest())


def test_the_sweep_aborts_a_dead_writers_upload_only_when_stale(store: S3BlobStore) -> None:
    writer = store.begin()
    writer.write(os.urandom(WRITE_PART))  # one part sent, then the writer "dies"
    writer._collect()  # type: ignore[attr-defined]
    assert store.cleanup_temp(3600) == 0
    assert staged(store)[1]
    assert store.cleanup_temp(0) == 1
    assert staged(store) == ([], [])
    writer._upload_id = None  # type: ignore[attr-defined]  # aborted by the sweep already
    writer.abort()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/team/blobs/", ("bucket", "team/blobs/")),
    ],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "file:///x", "bucket/x", None])
def test_a_bad_s3_url_says_how_it_looks(url: object) -> None:
    with pytest.raises(InvalidArgument, match="s3://BUCKET"):
        parse_s3_url(url)  # type: ignore[arg-type]
