"""The S3 half of bench_upload: moto's server on loopback as the bucket, `registrum server
--blobs s3://...` (direct, then --proxy-blobs) in front of it, and boto3's own `upload_file`
as the yardstick."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import free_port, healthy, report, rss_mb, stop

import registrum
from registrum.client.http import HttpStore
from registrum.store.tracking.blob_direct import part_size_for

BUCKET = "registrum-bench"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto() -> Iterator[str]:
    """moto's S3 server in a process of its own; yields its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=url)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def s3_server(store_url: str, *extra: str) -> Iterator[tuple[str, int]]:
    """`registrum server --blobs s3://BUCKET/bench`; yields its URL and process id."""
    port = free_port()
    cmd = [sys.executable, "-m", "registrum.cli", "server", "--port", str(port)]
    cmd += ["--store", store_url, "--blobs", f"s3://{BUCKET}/bench", "--log-level", "warning"]
    proc = subprocess.Popen([*cmd, *extra])
    began = time.monotonic()
    while not healthy(port):
        if proc.poll() is not None or time.monotonic() - began > 60:
            stop(proc)
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)


def touch(path: Path) -> None:
    """New last bytes: a new blob each round, so no upload is skipped as stored."""
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(os.urandom(8))


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def empty_bucket(client: object) -> None:
    """Drops what the rounds stored: moto keeps every object, and its memory is the bench's."""
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])  # type: ignore[attr-defined]
    for item in listed:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])  # type: ignore[attr-defined]


_KILLED_CLIENT = """
import sys
from registrum.client.http import HttpStore
HttpStore(sys.argv[1]).upload_direct(sys.argv[2])
"""


def resume(url: str, source: Path, client: object) -> tuple[int, int, int]:
    """Starts an upload in a child process, SIGKILLs it once about half the parts arrived,
    then uploads again here: (parts before the kill, parts sent on resume, parts in all)."""
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, url, str(source)])
    arrived = []
    total = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])  # type: ignore[attr-defined]
        for upload in uploads:
            arrived = client.list_parts(  # type: ignore[attr-defined]
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts", [])
        total = -(-source.stat().st_size // part_size_for(source.stat().st_size))
        if len(arrived) >= total // 2:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with contextlib.closing(HttpStore(url)) as store:
        store.upload_direct(source)
        return len(arrived), store.direct.parts_sent, total


def bench_s3(
    gib: float, rounds: int, rss_gib: float, write_file: Callable[[Path, int], None]
) -> None:
    import boto3

    os.environ.update(CREDENTIALS)
    size = int(gib * (1 << 30))
    with tempfile.TemporaryDirectory(dir=".") as scratch, moto() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        folder = Path(scratch)
        os.environ["REGISTRUM_HOME"] = str(folder / "home")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        source = folder / "model.ckpt"
        write_file(source, size)
        direct_s, boto_s, proxied_s, readback_s = [], [], [], []
        with s3_server(f"sqlite:///{folder}/direct.db") as (url, pid):
            run = registrum.init(project="bench", store=url, capture_environment=False)
            for i in range(rounds):
                touch(source)

                def direct() -> None:
                    direct_s.append(timed(lambda: run.log_artifact(source, name="ckpt")))

                def plain(key: str = f"plain/{i}") -> None:
                    boto_s.append(timed(lambda: s3.upload_file(str(source), BUCKET, key)))

                for upload in (direct, plain) if i % 2 == 0 else (plain, direct):
                    upload()
                # What the server's check of a multipart upload must do at least, measured
                # alone: read the whole object back and hash it.
                readback_s.append(timed(functools.partial(read_back, s3, f"plain/{i}")))
                empty_bucket(s3)
            run.finish()
            touch(source)
            with contextlib.closing(HttpStore(url)) as one:
                one.upload_direct(source)
                split = one.direct.last_timing
            empty_bucket(s3)
            big = folder / "big.ckpt"
            write_file(big, int(rss_gib * (1 << 30)))
            growth = watch_rss(pid, lambda: HttpStore(url).upload_direct(big))
            big.unlink()
            empty_bucket(s3)
            touch(source)
            before, on_resume, total = resume(url, source, s3)
            empty_bucket(s3)
        with s3_server(f"sqlite:///{folder}/proxied.db", "--proxy-blobs") as (url, _):
            run = registrum.init(project="bench", store=url, capture_environment=False)
            for _ in range(rounds):
                touch(source)
                proxied_s.append(timed(lambda: run.log_artifact(source, name="ckpt")))
                empty_bucket(s3)
            run.finish()
    direct_t, plain_t, proxied_t, readback_t = (
        statistics.median(x) for x in (direct_s, boto_s, proxied_s, readback_s)
    )
    rate = size / direct_t / 2**20
    report(
        f"{gib:g} GiB checkpoint, direct to S3",
        f"{rate:,.0f} MiB/s, {plain_t / direct_t:.0%} of boto3's upload_file",
        plain_t / direct_t >= 0.8,
        ">= 80% of boto3 upload_file",
        f"  boto3 upload_file {size / plain_t / 2**20:,.0f} MiB/s (medians of {rounds} "
        "alternating rounds, moto on loopback). Of one direct upload, "
        f"{split['send']:.1f} s went to sending the parts ({size / split['send'] / 2**20:,.0f} "
        f"MiB/s) and {split['check']:.1f} s to completing it, the server's read-back of the "
        "whole object's sha256 and publishing it in place (reading an object back and "
        f"hashing it, which that check must do, takes {readback_t:.1f} s alone)",
    )
    report(
        f"{gib:g} GiB checkpoint, direct vs proxied",
        f"{proxied_t / direct_t:.1f}x",
        proxied_t / direct_t >= 2,
        ">= 2x the proxied path",
        f"  proxied (--proxy-blobs) {size / proxied_t / 2**20:,.0f} MiB/s; boto3's own "
        f"upload_file to the same moto runs at only {proxied_t / plain_t:.1f}x the proxied "
        "path's speed: moto, not the path, sets the pace",
    )
    report(
        f"server RSS during a {rss_gib:g} GiB direct upload",
        f"+{growth:.1f} MiB",
        growth < 20,
        "< 20 MiB",
    )
    report(
        "killed upload resumed",
        f"{on_resume} of {total} parts sent on resume",
        before > 0 and on_resume <= total - before,
        "only the missing parts",
        f"  ({before} parts had arrived before the SIGKILL)",
    )


def read_back(client: object, key: str) -> str:
    """GET an object and hash it, as the server's check does."""
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"]  # type: ignore[attr-defined]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(16 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def watch_rss(pid: int, work: Callable[[], object]) -> float:
    """How far the process `pid` grew (MiB) above its RSS at the start while `work` ran."""
    base = rss_mb(pid)
    peaks = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peaks.append(rss_mb(pid))

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        work()
    finally:
        done.set()
        watcher.join()
    return max(peaks) - base
