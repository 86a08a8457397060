"""Which file system a path lies on, to refuse a SQLite database on a network file system.

SQLite's locks and WAL mode's shared memory hold only among processes of one machine. On
NFS, SMB/CIFS, sshfs and the like, two servers on different machines (or one that the file
system's locks fail) can each believe they hold the write lock, and the database is corrupt
(sqlite.org/howtocorrupt.html, 2.1; sqlite.org/wal.html: "WAL does not work over a network
filesystem"). Several servers on one database is what PostgreSQL is for.

The mount table is read from /proc/self/mounts (Linux); where there is none, nothing is
detected.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTS = Path("/proc/self/mounts")
# File system types whose files other machines reach: network file systems, cluster file
# systems, and FUSE file systems that reach a remote host or a bucket.
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "afs",
        "coda",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "orangefs",
        "gfs2",
        "ocfs2",
        "davfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "fuse.glusterfs",
        "fuse.ceph-fuse",
        "fuse.juicefs",
        "fuse.goofys",
        "fuse.blobfuse",
        "fuse.blobfuse2",
        "fuse.mountpoint-s3",
        "fuse.davfs2",
        "fuse.seaweedfs",
    }
)
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of the mount table."""

    source: str
    point: str
    type: str

    @property
    def network(self) -> bool:
        """Whether other machines may reach the files under it."""
        return self.type in NETWORK_TYPES


def parse_mounts(table: str) -> list[Mount]:
    """The mounts of a /proc/mounts text, in its order (a later mount hides an earlier one
    at the same point); octal escapes (`\\040` for a space) decoded."""
    found = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            source, point, kind = (_ESCAPE.sub(lambda m: chr(int(m[1], 8)), f) for f in fields[:3])
            found.append(Mount(source, point, kind))
    return found


def mount_of(path: str | os.PathLike[str], mounts: list[Mount]) -> Mount | None:
    """The mount that holds `path` (an absolute, resolved path): the longest mount point
    above it, the latest of equal ones."""
    target = str(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        under = target == point or target.startswith(point if point == "/" else point + "/")
        if under and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def network_mount(path: str | os.PathLike[str], table: str | None = None) -> Mount | None:
    """The network mount that `path` (or, before it exists, the folder it would be made in)
    lies on; None on a local file system, or where the mount table cannot be read. `table`
    is a mount table's text, read from /proc/self/mounts when None."""
    if table is None:
        try:
            table = MOUNTS.read_text()
        except OSError:
            return None
    existing = Path(path).expanduser().absolute()
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    mount = mount_of(existing.resolve(), parse_mounts(table))
    return mount if mount is not None and mount.network else None


def sqlite_on_network_problem(
    database: str | os.PathLike[str], table: str | None = None
) -> str | None:
    """Why a server must not use the SQLite file `database`, when it lies on a network file
    system; None otherwise."""
    mount = network_mount(database, table)
    if mount is None:
        return None
    return (
        f"the SQLite database {database} lies on a network file system ({mount.type} "
        f"{mount.source} at {mount.point}); SQLite's locks do not hold across machines there, "
        "so a second server on the file, or a lost lock, corrupts it. Move the database to a "
        "local disk, or serve several replicas from PostgreSQL "
        "(--store postgresql+psycopg://USER@HOST/DB)"
    )
