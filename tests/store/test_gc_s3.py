"""Garbage collection on an S3 bucket (moto's server): the bytes of collected blobs leave the
bucket, large ones published in place with their upload, and finished uploads that no blob
came to use go once old enough; registered bytes stay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from registrum.store import Store, open_store
from registrum.store import schema as t
from registrum.store.blobs_s3 import S3BlobStore, new_staging_name
from registrum.store.s3_writer import WRITE_PART


@pytest.fixture
def store(s3_bucket: str, tmp_path: Path) -> Iterator[Store]:  # noqa: F811
    opened = open_store(f"sqlite:///{tmp_path}/r.db", blobs=f"s3://{s3_bucket}/team/")
    yield opened
    opened.close()


def _keys(s3: S3BlobStore) -> set[str]:
    listed = s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])
    return {o["Key"] for o in listed}


def test_collected_blobs_leave_the_bucket(store: Store) -> None:
    s3 = store.blobs
    assert isinstance(s3, S3BlobStore)
    large = store.put_blob([os.urandom(2 * WRITE_PART + 5)])  # published in place
    small = store.put_blob([b"small checkpoint"])
    kept = store.put_blob([b"registered weights"])
    run = store.create_run("p")
    for name, info in (("big", large), ("small", small)):
        store.create_artifact(
            "p",
            name,
            type="checkpoint",
            files=[{"path": "f", "sha256": info.sha256, "size": info.size}],
            run_id=run.id,
        )
    store.register_model_version(
        "clf", project="p", files=[{"path": "w", "sha256": kept.sha256, "size": kept.size}]
    )
    uploads = {k for k in _keys(s3) if k.startswith(s3.upload_key(""))}
    assert len(uploads) == 1  # the large blob's bytes
    # A finished upload that no blob came to use (its server died before publishing it).
    stray = s3.upload_key(new_staging_name())
    s3.client.put_object(Bucket=s3.bucket, Key=stray, Body=b"orphaned part bytes")
    store.delete_run(run.id)
    with store.engine.begin() as conn:
        conn.execute(update(t.runs).values(deleted_at=t.runs.c.deleted_at - 8 * 86400))
        conn.execute(update(t.blobs).values(used_at=t.blobs.c.used_at - 8 * 86400))

    dry = store.collect_garbage(dry_run=True, orphan_age=0)
    assert (dry.runs, dry.blobs) == (1, 3)
    assert stray in _keys(s3)
    report = store.collect_garbage(orphan_age=0)
    assert (report.runs, report.blobs) == (1, 3)
    assert report.bytes == large.size + small.size + len(b"orphaned part bytes")
    assert _keys(s3) == {s3.key(kept.sha256)}
    assert store.blobs.exists(kept.sha256) and not store.blobs.exists(large.sha256)
    assert store.collect_garbage(orphan_age=0).blobs == 0
