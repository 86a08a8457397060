"""Copying content-addressed blobs between folders: hard links where both sides share a file
system (blobs never change once written, so a link is as good as a copy and costs nothing),
else copies; progress every few seconds; a restore checks every blob's sha256 as it goes."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from registrum.store.backups.manifest import blob_path, sha256_file

Report = Callable[[str], None]
PROGRESS_EVERY = 2.0
# A link fails with these where the two folders are on different file systems, or the file
# system has no hard links: copy from then on.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass
class Copied:
    """What a blob copy did: blobs and bytes done, how many were linked, which were missing
    from the source and which had content that does not hash to their name."""

    count: int = 0
    bytes: int = 0
    linked: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)


class _Progress:
    def __init__(self, report: Report, what: str, total: int, total_bytes: int) -> None:
        self.report, self.what = report, what
        self.total, self.total_bytes = total, total_bytes
        self.last = time.monotonic()

    def tick(self, done: Copied, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        self.report(
            f"{self.what}: {done.count:,} of {self.total:,} blobs, "
            f"{_size(done.bytes)} of {_size(self.total_bytes)}"
            + (f", {done.linked:,} hard-linked" if done.linked else "")
        )


def copy_blobs(
    blobs: Iterable[tuple[str, int]],
    source: Path,
    target: Path,
    *,
    link: bool,
    verify: bool,
    report: Report,
    what: str,
    total: int,
    total_bytes: int,
) -> Copied:
    """Copies each blob `(sha256, size)` from the folder `source` to `target` (same layout).

    A blob already in `target` is kept. With `verify`, each blob is hashed on the way and a
    blob whose content does not match its name is not placed (listed in `damaged`). A new
    blob appears under its name only whole: written (or linked) beside, then renamed.
    """
    done = Copied()
    progress = _Progress(report, what, total, total_bytes)
    temp = target / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    for sha, size in blobs:
        src, dst = blob_path(source, sha), blob_path(target, sha)
        if not dst.exists():
            if not src.is_file():
                done.missing.append(sha)
                continue
            staged = temp / f"restore-{secrets.token_hex(8)}"
            try:
                linked = link and _link(src, staged)
                if not linked:
                    link = False
                    shutil.copyfile(src, staged)
                if verify and sha256_file(staged) != sha:
                    done.damaged.append(sha)
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, dst)
                done.linked += linked
            finally:
                staged.unlink(missing_ok=True)
        done.count += 1
        done.bytes += size
        progress.tick(done)
    progress.tick(done, final=True)
    return done


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno in _NO_LINK:
            return False
        raise
    return True


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{value:.1f} TiB"
