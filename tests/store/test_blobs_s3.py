"""What only the S3 backend has: multipart uploads published in place (a pointer at the blob's
key, no copy), the sweep of uploads whose writer died, and its URL. The shared contract runs
in test_blobs.py."""

from __future__ import annotations

import hashlib
import os

import pytest

from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from registrum.errors import HashMismatch, InvalidArgument, StoreUnavailable
from registrum.store.blobs_s3 import WRITE_PART, S3BlobStore, parse_s3_url


@pytest.fixture
def store(s3_bucket: str) -> S3BlobStore:  # noqa: F811
    return S3BlobStore(s3_bucket, "/nested/prefix/")


def staged(store: S3BlobStore) -> tuple[list[str], list[str]]:
    """Objects under the staging prefix, and multipart uploads in progress."""
    s3 = store.client
    listed = s3.list_objects_v2(Bucket=store.bucket, Prefix=store.staging_key(""))
    uploads = []
    for prefix in (store.staging_key(""), store.upload_key("")):
        found = s3.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
        uploads += [u["Key"] for u in found.get("Uploads", [])]
    return [o["Key"] for o in listed.get("Contents", [])], uploads


def objects(store: S3BlobStore) -> dict[str, int]:
    """Every object in the bucket, with its size."""
    listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def test_a_large_blob_streams_as_an_upload_and_is_published_in_place(
    store: S3BlobStore,
) -> None:
    data = os.urandom(2 * WRITE_PART + 5)
    sha = hashlib.sha256(data).hexdigest()
    with store.begin() as writer:
        for i in range(0, len(data), 3 << 20):
            writer.write(data[i : i + (3 << 20)])
            if i > WRITE_PART:  # a part went: a multipart upload is open
                assert staged(store)[1]
        writer.commit(sha)
    assert store.key(sha) == f"nested/prefix/{sha[:2]}/{sha}"
    # The blob's key holds an empty pointer; the bytes stay where they were uploaded.
    (upload,) = (k for k in objects(store) if k.startswith(store.upload_key("")))
    assert objects(store) == {store.key(sha): 0, upload: len(data)}
    assert store.located(sha) == (upload, len(data))
    assert store.exists(sha) and store.size(sha) == len(data)
    assert b"".join(store.iter_range(sha)) == data
    assert b"".join(store.iter_range(sha, 7, 26)) == data[7:27]
    with store.open(sha) as f:
        assert f.read() == data
    assert staged(store) == ([], [])

    # The same content again: its upload is dropped, the first stays in use.
    with store.begin() as again:
        again.write(data)
        again.commit()
    assert objects(store) == {store.key(sha): 0, upload: len(data)}
    # A second check of the same upload (two replicas) keeps it.
    store.publish_in_place(upload.rsplit("/", 1)[-1], sha, len(data))
    assert b"".join(store.iter_range(sha)) == data

    store.delete(sha)
    assert objects(store) == {} and not store.exists(sha)


def test_a_damaged_pointer_is_an_error_not_other_bytes(store: S3BlobStore) -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    store.client.put_object(
        Bucket=store.bucket,
        Key=store.key(sha),
        Body=b"",
        Metadata={"registrum-upload": "../../elsewhere", "registrum-size": "1"},
    )
    with pytest.raises(StoreUnavailable, match="pointer object is damaged"):
        store.size(sha)
    with pytest.raises(StoreUnavailable, match="pointer object is damaged"):
        b"".join(store.iter_range(sha))


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
