"""A large checkpoint uploaded with `run.log_artifact` to `registrum server`, against `cp`; and,
with blobs in an S3 bucket (moto's server on loopback), the direct path against boto3's own
`upload_file` and against the proxied path, the server's RSS during a large upload, and a
killed upload's resume.

Each round first copies the file with `cp` (to the same file system, then deletes the copy),
then uploads it, so both meet the same page cache; every round changes the file's last bytes,
so no upload is skipped as already stored. Reports the medians of the paired rounds and the
client's RSS growth. The S3 rounds alternate the direct upload and boto3's in the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import print_platform, report, server
from _s3 import bench_s3

import registrum


def rss() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]


def watch_rss(done: threading.Event, peaks: list[float]) -> None:
    while not done.wait(0.02):
        peaks.append(rss())


def write_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for _ in range(size >> 20):
            out.write(block[:-8] + os.urandom(8))  # every MiB differs: no shortcut anywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="checkpoint size in GiB")
    parser.add_argument("--rounds", type=int, default=5, help="paired cp/upload rounds")
    parser.add_argument("--s3-gib", type=float, default=1.0, help="S3 checkpoint size in GiB")
    parser.add_argument("--s3-rounds", type=int, default=3, help="rounds of each S3 path")
    parser.add_argument("--rss-gib", type=float, default=2.0, help="upload watched for RSS")
    parser.add_argument("--only", choices=["local", "s3"], help="run one half only")
    args = parser.parse_args()
    print_platform()
    if args.only != "s3":
        bench_local(args)
    if args.only != "local":
        bench_s3(args.s3_gib, args.s3_rounds, args.rss_gib, write_file)


def bench_local(args: argparse.Namespace) -> None:
    size = int(args.gib * (1 << 30))
    cp_times, upload_times, growth = [], [], []
    with tempfile.TemporaryDirectory(dir=".") as scratch:
        folder = Path(scratch)
        source = folder / "model.ckpt"
        write_file(source, size)
        with server(f"sqlite:///{folder}/r.db", folder / "blobs") as url:
            os.environ["REGISTRUM_HOME"] = str(folder / "home")
            run = registrum.init(project="bench", store=url, capture_environment=False)
            for _ in range(args.rounds):
                with open(source, "r+b") as f:
                    f.seek(-8, os.SEEK_END)
                    f.write(os.urandom(8))
                began = time.perf_counter()
                subprocess.run(["cp", source, folder / "copy.ckpt"], check=True)
                cp_times.append(time.perf_counter() - began)
                (folder / "copy.ckpt").unlink()

                base = rss()
                peaks = [base]
                done = threading.Event()
                watcher = threading.Thread(target=watch_rss, args=(done, peaks))
                watcher.start()
                began = time.perf_counter()
                run.log_artifact(source, name="checkpoint", type="checkpoint")
                upload_times.append(time.perf_counter() - began)
                done.set()
                watcher.join()
                growth.append(max(peaks) - base)
            run.finish()
    cp_s, upload_s = statistics.median(cp_times), statistics.median(upload_times)
    ratio = cp_s / upload_s
    report(
        f"{args.gib:g} GiB checkpoint upload",
        f"{size / upload_s / 2**20:,.0f} MiB/s",
        ratio >= 0.7,
        ">= 70% of cp",
        f"  cp {size / cp_s / 2**20:,.0f} MiB/s, upload at {ratio:.0%} of it "
        f"(medians of {args.rounds} paired rounds; cp {min(cp_times):.2f}-{max(cp_times):.2f} s, "
        f"upload {min(upload_times):.2f}-{max(upload_times):.2f} s); "
        f"client RSS +{max(growth):.0f} MiB (target <= 64)",
    )


if __name__ == "__main__":
    main()
