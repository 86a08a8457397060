"""Tests for content-addressed blob storage."""

from __future__ import annotations

import fcntl
import hashlib
import io
import multiprocessing
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from registrum.entities import BlobInfo
from registrum.errors import (
    BlobNotFound,
    HashMismatch,
    InvalidArgument,
    RangeNotSatisfiable,
    StoreError,
)
from registrum.server.ranges import parse_range
from registrum.store import blobs
from registrum.store.blobs import BlobStore, LocalBlobStore
from registrum.store.blobs_s3 import WRITE_PART, S3BlobStore

MiB = 1 << 20
CONTENT = bytes(range(256)) * 4  # 1024 bytes, every byte value
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()
MISSING_SHA = hashlib.sha256(b"never stored").hexdigest()


def generated(n_chunks: int, chunk: int = MiB) -> Iterator[bytes]:
    """Deterministic content produced chunk by chunk, never whole."""
    for i in range(n_chunks):
        yield hashlib.sha256(i.to_bytes(8, "big")).digest() * (chunk // 32)


def digest_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    for c in chunks:
        h.update(c)
        size += len(c)
    return h.hexdigest(), size


def temp_files(store: BlobStore) -> list[str]:
    """What writers left behind: temp files, or staging objects and multipart uploads."""
    if isinstance(store, S3BlobStore):
        staging = store.staging_key("")
        s3 = store.client
        objects = s3.list_objects_v2(Bucket=store.bucket, Prefix=staging).get("Contents", [])
        uploads = s3.list_multipart_uploads(Bucket=store.bucket, Prefix=staging)
        return sorted(o["Key"] for o in [*objects, *uploads.get("Uploads", [])])
    assert isinstance(store, LocalBlobStore)
    return sorted(os.listdir(store.temp_dir)) if store.temp_dir.exists() else []


def blob_files(store: BlobStore) -> list[str]:
    """Every published blob (as a file or an object key)."""
    if isinstance(store, S3BlobStore):
        listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
        return [o["Key"] for o in listed if "/.staging/" not in f"/{o['Key']}"]
    assert isinstance(store, LocalBlobStore)
    return [
        str(p) for p in store.root.rglob("*") if p.is_file() and store.temp_dir not in p.parents
    ]


def published_at(store: BlobStore, sha256: str) -> str:
    """Where a blob lives: `ab/cd/<sha>` under the folder, `PREFIX/ab/<sha>` in a bucket."""
    if isinstance(store, S3BlobStore):
        store.client.head_object(Bucket=store.bucket, Key=store.key(sha256))
        return store.key(sha256)
    assert isinstance(store, LocalBlobStore)
    assert store.path(sha256).is_file()
    return store.path(sha256).relative_to(store.root).as_posix()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The same contract on each backend: a local folder, and a bucket over S3's wire
    protocol (moto's server on loopback)."""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return S3BlobStore(bucket, "team/blobs")
    return LocalBlobStore(tmp_path / "blobs")


def memory_bound(store: BlobStore) -> int:
    """The most a streamed write may hold, whatever the blob's size: a bucket's writer
    holds the part it fills and the one in flight."""
    return 8 * MiB + (3 * WRITE_PART if isinstance(store, S3BlobStore) else 0)


# What only the local folder has (paths, O_DIRECT, processes writing one folder).
local_only = pytest.mark.parametrize("store", ["local"], indirect=True)


@pytest.fixture
def stored(store: BlobStore) -> str:
    return store.put([CONTENT]).sha256


# -- writing and reading ----------------------------------------------------------


def test_local_store_is_a_blob_store(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_write_commit_read_round_trip(store: BlobStore) -> None:
    writer = store.begin()
    for i in range(0, len(CONTENT), 100):
        writer.write(CONTENT[i : i + 100])
    info = writer.commit()
    assert info == BlobInfo(CONTENT_SHA, len(CONTENT))
    assert store.exists(CONTENT_SHA)
    assert store.size(CONTENT_SHA) == len(CONTENT)
    with store.open(CONTENT_SHA) as f:
        assert f.read() == CONTENT
    assert b"".join(store.iter_range(CONTENT_SHA)) == CONTENT
    expected = (
        f"team/blobs/{CONTENT_SHA[:2]}/{CONTENT_SHA}"
        if isinstance(store, S3BlobStore)
        else f"{CONTENT_SHA[:2]}/{CONTENT_SHA[2:4]}/{CONTENT_SHA}"
    )
    assert published_at(store, CONTENT_SHA) == expected
    assert temp_files(store) == []


def test_commit_with_matching_expected_sha(store: BlobStore) -> None:
    with store.begin() as writer:
        writer.write(CONTENT)
        assert writer.commit(CONTENT_SHA) == BlobInfo(CONTENT_SHA, len(CONTENT))
    assert store.exists(CONTENT_SHA)


def test_empty_blob(store: BlobStore) -> None:
    info = store.put([])
    assert info == BlobInfo(hashlib.sha256(b"").hexdigest(), 0)
    assert store.size(info.sha256) == 0
    assert list(store.iter_range(info.sha256)) == []


def test_put_from_stream_and_file(store: BlobStore, tmp_path: Path) -> None:
    assert store.put(io.BytesIO(CONTENT)) == BlobInfo(CONTENT_SHA, len(CONTENT))
    source = tmp_path / "source.bin"
    source.write_bytes(CONTENT * 3)
    info = store.put_file(source, hashlib.sha256(CONTENT * 3).hexdigest())
    assert info.size == 3 * len(CONTENT)
    assert b"".join(store.iter_range(info.sha256)) == CONTENT * 3


def test_put_refuses_bytes(store: BlobStore) -> None:
    with pytest.raises(InvalidArgument, match="not bytes"):
        store.put(CONTENT)  # type: ignore[arg-type]


@local_only
def test_exception_in_context_aborts(store: LocalBlobStore) -> None:
    with pytest.raises(RuntimeError), store.begin() as writer:
        writer.write(CONTENT)
        assert len(temp_files(store)) == 1
        raise RuntimeError("upload broke")
    assert temp_files(store) == []
    assert not store.exists(CONTENT_SHA)


def test_leaving_context_without_commit_aborts(store: BlobStore) -> None:
    with store.begin() as writer:
        writer.write(CONTENT)
    assert temp_files(store) == []
    assert blob_files(store) == []


def test_writer_is_closed_after_commit_or_abort(store: BlobStore) -> None:
    writer = store.begin()
    writer.commit()
    writer.abort()  # a no-op now
    with pytest.raises(InvalidArgument, match="already committed or aborted"):
        writer.write(b"more")
    aborted = store.begin()
    aborted.abort()
    aborted.abort()
    with pytest.raises(InvalidArgument):
        aborted.commit()


def test_streams_50_mib_in_bounded_memory(store: BlobStore) -> None:
    n_chunks = 50
    expected_sha, expected_size = digest_of(generated(n_chunks))
    tracemalloc.start()
    try:
        info = store.put(generated(n_chunks), expected_sha)
        read_sha, read_size = digest_of(store.iter_range(info.sha256))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == BlobInfo(expected_sha, expected_size)
    assert (read_sha, read_size) == (expected_sha, expected_size)
    assert peak < memory_bound(store), f"peak traced memory {peak / MiB:.1f} MiB"


@local_only
@pytest.mark.parametrize(
    "size", [4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 8 * MiB + 4095, 8 * MiB + 4096, 13 * MiB + 7]
)
def test_sizes_around_the_direct_write_block_round_trip(store: LocalBlobStore, size: int) -> None:
    data = b"".join(generated(14))[:size]
    with store.begin() as writer:
        for start in range(0, size, 700_001):  # chunks that straddle every block edge
            writer.write(data[start : start + 700_001])
        info = writer.commit(hashlib.sha256(data).hexdigest())
    assert info.size == size == store.size(info.sha256)
    assert b"".join(store.iter_range(info.sha256)) == data
    assert temp_files(store) == []


@local_only
def test_a_large_blob_bypasses_the_page_cache(store: LocalBlobStore) -> None:
    with store.begin() as writer:
        writer.write(b"x" * 1000)
        direct = os.O_DIRECT
        assert not fcntl.fcntl(writer._fd, fcntl.F_GETFL) & direct  # type: ignore[attr-defined]
        for chunk in generated(9, chunk=700_000 // 32 * 32):  # never block-aligned
            writer.write(chunk)
        flags = fcntl.fcntl(writer._fd, fcntl.F_GETFL)  # type: ignore[attr-defined]
        writer.commit()
    assert flags & direct


@local_only
def test_without_direct_writes_large_blobs_are_written_through_the_cache(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_DIRECT", raising=False)  # as on macOS
    data = b"".join(generated(9))
    info = store.put([data[:5_000_000], data[5_000_000:]])
    assert b"".join(store.iter_range(info.sha256)) == data


def test_put_file_streams_in_bounded_memory(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as f:
        for chunk in generated(20):
            f.write(chunk)
    tracemalloc.start()
    try:
        info = store.put_file(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 20 * MiB
    assert peak < memory_bound(store), f"peak traced memory {peak / MiB:.1f} MiB"


# -- hash verification and idempotence --------------------------------------------


def test_hash_mismatch_leaves_nothing(store: BlobStore) -> None:
    wrong = MISSING_SHA
    writer = store.begin()
    writer.write(CONTENT)
    with pytest.raises(HashMismatch) as caught:
        writer.commit(wrong)
    assert wrong in str(caught.value) and CONTENT_SHA in str(caught.value)
    assert caught.value.context == {"expected": wrong, "actual": CONTENT_SHA}
    assert not store.exists(CONTENT_SHA) and not store.exists(wrong)
    assert temp_files(store) == []
    assert blob_files(store) == []


def test_put_hash_mismatch_leaves_nothing(store: BlobStore) -> None:
    with pytest.raises(HashMismatch):
        store.put(generated(3), MISSING_SHA)
    assert temp_files(store) == []
    assert blob_files(store) == []


@local_only
def test_existing_blob_is_not_rewritten(store: LocalBlobStore, stored: str) -> None:
    path = store.path(stored)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = path.stat()
    assert store.put([CONTENT[:10], CONTENT[10:]], stored) == BlobInfo(stored, len(CONTENT))
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert temp_files(store) == []


# -- concurrency and crashes ------------------------------------------------------


def test_concurrent_threads_write_same_content(store: BlobStore) -> None:
    n = 8
    expected = BlobInfo(*digest_of(generated(4, 256 * 1024)))
    barrier = threading.Barrier(n)
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with store.begin() as writer:
                barrier.wait()
                for chunk in generated(4, 256 * 1024):
                    writer.write(chunk)
                results.append(writer.commit(expected.sha256))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [expected] * n
    assert digest_of(store.iter_range(expected.sha256)) == (expected.sha256, expected.size)
    assert temp_files(store) == []


def _write_in_process(root: str, barrier: Barrier, expected_sha: str) -> None:
    store = LocalBlobStore(root)
    with store.begin() as writer:
        barrier.wait(timeout=60)
        for chunk in generated(8, 256 * 1024):
            writer.write(chunk)
        if writer.commit(expected_sha).sha256 != expected_sha:
            raise SystemExit(3)


def _crash_mid_write(root: str) -> None:
    writer = LocalBlobStore(root).begin()
    writer.write(CONTENT)
    os._exit(1)


@local_only
def test_concurrent_processes_write_same_content(store: LocalBlobStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    expected_sha, expected_size = digest_of(generated(8, 256 * 1024))
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_write_in_process, args=(str(store.root), barrier, expected_sha))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert digest_of(store.iter_range(expected_sha)) == (expected_sha, expected_size)
    assert temp_files(store) == []


@local_only
def test_crash_mid_write_leaves_only_a_temp_file(store: LocalBlobStore) -> None:
    proc = multiprocessing.get_context("spawn").Process(
        target=_crash_mid_write, args=(str(store.root),)
    )
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 1
    assert not store.exists(CONTENT_SHA)
    assert blob_files(store) == []
    (leftover,) = temp_files(store)
    assert store.cleanup_temp(3600) == 0
    old = time.time() - 7200
    os.utime(store.temp_dir / leftover, (old, old))
    assert store.cleanup_temp(3600) == 1
    assert temp_files(store) == []


def test_cleanup_temp_spares_live_writers(store: BlobStore) -> None:
    assert store.cleanup_temp(0) == 0  # no temp folder yet
    with store.begin() as writer:
        writer.write(CONTENT)
        assert store.cleanup_temp(3600) == 0
        assert writer.commit() == BlobInfo(CONTENT_SHA, len(CONTENT))
    assert store.exists(CONTENT_SHA)


@local_only
def test_a_slow_writer_keeps_its_temp_file_fresh(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content that trickles in stays in the writer's buffer; the file's time is kept fresh
    anyway, so a sweep of dead writers' files does not take it for one."""
    monkeypatch.setattr(blobs, "_TOUCH_EVERY", 0.0)
    with store.begin() as writer:
        (name,) = temp_files(store)
        old = time.time() - 7200
        os.utime(store.temp_dir / name, (old, old))
        writer.write(b"a trickle")
        assert store.cleanup_temp(3600) == 0
        writer.write(b" more")
        assert writer.commit().size == len(b"a trickle more")


@local_only
def test_a_failed_write_removes_its_temp_file(store: LocalBlobStore) -> None:
    """A write that fails (here: the file turns read-only under the writer, as after a
    device error) removes the temp file at once, even though the error's traceback still
    holds a view of the writer's buffer."""
    writer = store.begin()
    writer.write(os.urandom(blobs._DIRECT_BLOCK))  # a first full block goes to the file
    read_only = os.open(os.devnull, os.O_RDONLY)
    os.dup2(read_only, writer._fd)  # type: ignore[attr-defined]
    os.close(read_only)
    with pytest.raises(StoreError, match="could not write to the blob store"):
        writer.write(os.urandom(2 * blobs._DIRECT_BLOCK))
    assert temp_files(store) == []
    writer.abort()


# -- ranges -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, CONTENT),
        (100, None, CONTENT[100:]),
        (0, 99, CONTENT[:100]),
        (100, 199, CONTENT[100:200]),
        (1023, None, CONTENT[1023:]),
        (1023, 1023, CONTENT[1023:]),
        (0, 0, CONTENT[:1]),
        (500, 1023, CONTENT[500:]),
    ],
)
def test_iter_range(
    store: BlobStore, stored: str, start: int, end: int | None, expected: bytes
) -> None:
    assert b"".join(store.iter_range(stored, start, end)) == expected


def test_iter_range_chunks(store: BlobStore, stored: str) -> None:
    chunks = list(store.iter_range(stored, 10, 109, chunk_size=7))
    assert b"".join(chunks) == CONTENT[10:110]
    assert [len(c) for c in chunks] == [7] * 14 + [2]


@pytest.mark.parametrize(
    ("start", "end"), [(1024, None), (1024, 1024), (0, 1024), (10, 9), (-1, None), (-5, 3)]
)
def test_iter_range_outside_blob(
    store: BlobStore, stored: str, start: int, end: int | None
) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        store.iter_range(stored, start, end)  # raised on the call, before iterating
    assert caught.value.context == {"size": len(CONTENT)}


def test_iter_range_on_empty_blob(store: BlobStore) -> None:
    empty = store.put([]).sha256
    with pytest.raises(RangeNotSatisfiable):
        store.iter_range(empty, 0, 0)


def test_iter_range_checks_before_iterating(store: BlobStore, stored: str) -> None:
    with pytest.raises(BlobNotFound):
        store.iter_range(MISSING_SHA)
    with pytest.raises(InvalidArgument, match="chunk_size"):
        store.iter_range(stored, chunk_size=0)


def test_iter_range_closed_early(store: BlobStore, stored: str) -> None:
    chunks = store.iter_range(stored, chunk_size=10)
    assert next(chunks) == CONTENT[:10]
    chunks.close()  # type: ignore[attr-defined]
    store.iter_range(stored)  # never started: opens nothing


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=100-", 1000, (100, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=-1000", 1000, (0, 999)),
        ("bytes=-5000", 1000, (0, 999)),
        ("bytes=0-5000", 1000, (0, 999)),
        ("bytes=999-999", 1000, (999, 999)),
        ("bytes=0-0", 1, (0, 0)),
        ("bytes=0-", 1, (0, 0)),
        ("BYTES=1-2", 1000, (1, 2)),
        ("bytes = 1-2 ", 1000, (1, 2)),
        ("", 1000, None),
        ("bytes", 1000, None),
        ("bytes=", 1000, None),
        ("bytes=-", 1000, None),
        ("bytes=abc", 1000, None),
        ("bytes=5-3", 1000, None),
        ("bytes=1-2-3", 1000, None),
        ("bytes=+1-2", 1000, None),
        ("bytes=0x1-2", 1000, None),
        ("bytes=\u0661-\u0662", 1000, None),
        ("bytes=0-1,5-6", 1000, None),
        ("items=0-1", 1000, None),
        ("0-1", 1000, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", 1000),
        ("bytes=1000-1001", 1000),
        ("bytes=5000-6000", 1000),
        ("bytes=-0", 1000),
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=-1", 0),
    ],
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.context == {"size": size}


def test_parse_range_output_feeds_iter_range(store: BlobStore, stored: str) -> None:
    first, last = parse_range("bytes=-24", store.size(stored)) or (0, 0)
    assert b"".join(store.iter_range(stored, first, last)) == CONTENT[-24:]


# -- arguments and deletion -------------------------------------------------------

BAD_SHAS = [
    "../../etc/passwd",
    "../" + "a" * 61,
    "a" * 63,
    "a" * 65,
    CONTENT_SHA.upper(),
    "g" * 64,
    "",
    None,
    64,
]


@pytest.mark.parametrize("bad", BAD_SHAS)
@pytest.mark.parametrize("method", ["exists", "size", "open", "iter_range", "delete"])
def test_invalid_sha_is_rejected(store: BlobStore, method: str, bad: object) -> None:
    with pytest.raises(InvalidArgument, match="not a sha256 digest"):
        getattr(store, method)(bad)


@pytest.mark.parametrize("bad", BAD_SHAS[:3])
def test_invalid_expected_sha_stores_nothing(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        store.put([CONTENT], bad)
    writer = store.begin()
    writer.write(CONTENT)
    with pytest.raises(InvalidArgument):
        writer.commit(bad)
    assert temp_files(store) == []
    assert blob_files(store) == []


def test_put_checks_expected_sha_before_reading(store: BlobStore) -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("stream was read")
        yield b""

    with pytest.raises(InvalidArgument):
        store.put(never(), "nope")


def test_missing_blob(store: BlobStore) -> None:
    assert not store.exists(MISSING_SHA)
    with pytest.raises(BlobNotFound) as caught:
        store.size(MISSING_SHA)
    assert caught.value.context == {"sha256": MISSING_SHA}
    with pytest.raises(BlobNotFound):
        store.open(MISSING_SHA)


def test_delete(store: BlobStore, stored: str) -> None:
    store.delete(stored)
    assert not store.exists(stored)
    with pytest.raises(BlobNotFound):
        store.size(stored)
    with pytest.raises(BlobNotFound):
        store.open(stored)
    store.delete(stored)  # deleting what is absent does nothing
    assert store.put([CONTENT]) == BlobInfo(stored, len(CONTENT))
    assert store.exists(stored)
