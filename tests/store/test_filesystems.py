"""Telling a network file system from a local one, on real mount table lines, and
`registrum server` refusing a SQLite database on one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registrum.cli.server import network_sqlite_problem
from registrum.store.filesystems import mount_of, network_mount, parse_mounts

# Lines as /proc/self/mounts shows them on Linux hosts with each kind of mount.
TABLE = "\n".join(
    [
        (
            r"overlay / overlay rw,relatime,"
            r"lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,"
            r"upperdir=/var/lib/docker/overlay2/x/diff,"
            r"workdir=/var/lib/docker/overlay2/x/work 0 0"
        ),
        r"proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
        r"tmpfs /dev tmpfs rw,nosuid,size=65536k,mode=755 0 0",
        r"/dev/nvme0n1p1 /home ext4 rw,relatime,errors=remount-ro 0 0",
        (
            r"fileserver.lab:/export/home /home/shared nfs4 rw,relatime,vers=4.2,"
            r"rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,"
            r"sec=sys,clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2 0 0"
        ),
        (
            r"//nas.lab/ml /mnt/nas cifs rw,relatime,vers=3.1.1,cache=strict,username=ml,"
            r"uid=1000,noforceuid,gid=1000,noforcegid,addr=10.0.0.3,file_mode=0755,"
            r"dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,"
            r"bsize=1048576,echo_interval=60,actimeo=1 0 0"
        ),
        (
            r"alice@build.lab:/srv/data /mnt/remote\040data fuse.sshfs rw,nosuid,nodev,"
            r"relatime,user_id=1000,group_id=1000 0 0"
        ),
        (
            r"/dev/sdb1 /mnt/nas/local xfs rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,"
            r"noquota 0 0"
        ),
        (
            r"10.0.0.9:/vol /mnt/old nfs rw,relatime,vers=3,rsize=65536,wsize=65536,"
            r"namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys 0 0"
        ),
        r"/dev/sdc1 /mnt/old ext4 rw,relatime 0 0",
    ]
)


@pytest.mark.parametrize(
    ("path", "point", "kind"),
    [
        ("/home/ana/registrum.db", "/home", "ext4"),
        ("/home/shared/registrum.db", "/home/shared", "nfs4"),
        ("/home/sharedfolder/r.db", "/home", "ext4"),  # a name that starts alike is not under
        ("/mnt/nas/team/r.db", "/mnt/nas", "cifs"),
        ("/mnt/nas/local/r.db", "/mnt/nas/local", "xfs"),  # a local disk mounted below a share
        ("/mnt/remote data/r.db", "/mnt/remote data", "fuse.sshfs"),  # \040 is a space
        ("/mnt/old/r.db", "/mnt/old", "ext4"),  # the later mount hides the earlier one
        ("/var/tmp/r.db", "/", "overlay"),
    ],
)
def test_the_mount_that_holds_a_path(path: str, point: str, kind: str) -> None:
    mount = mount_of(path, parse_mounts(TABLE))
    assert mount is not None
    assert (mount.point, mount.type) == (point, kind)


@pytest.mark.parametrize(
    ("path", "network"),
    [
        ("/home/ana/registrum.db", False),
        ("/home/shared/registrum.db", True),
        ("/mnt/nas/team/r.db", True),
        ("/mnt/nas/local/r.db", False),
        ("/mnt/remote data/r.db", True),
        ("/mnt/old/r.db", False),
    ],
)
def test_network_file_systems_are_told_from_local_ones(path: str, network: bool) -> None:
    mount = mount_of(path, parse_mounts(TABLE))
    assert mount is not None and mount.network == network


def test_a_path_not_made_yet_is_judged_by_the_folder_it_will_be_made_in(tmp_path: Path) -> None:
    table = f"/dev/sda1 / ext4 rw 0 0\nhost:/x {tmp_path} nfs rw 0 0\n"
    mount = network_mount(tmp_path / "not" / "yet" / "r.db", table)
    assert mount is not None and mount.type == "nfs"


def test_this_machines_temporary_folder_is_local(tmp_path: Path) -> None:
    # Read from the real /proc/self/mounts: the test folder is on a local file system here.
    assert network_mount(tmp_path / "r.db") is None
    assert network_sqlite_problem(f"sqlite:///{tmp_path}/r.db") is None


def test_only_sqlite_files_are_judged() -> None:
    assert network_sqlite_problem("postgresql+psycopg://u@db.lab/registrum") is None
    assert network_sqlite_problem("sqlite:///:memory:") is None


def test_the_server_refuses_a_sqlite_file_on_a_network_mount(tmp_path: Path) -> None:
    """The server is started on a folder that a mount table (given through a copy of
    /proc/self/mounts with one more line) names as NFS."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from registrum.store import filesystems\n"
        "table = Path('/proc/self/mounts').read_text()\n"
        f"fake = Path({str(tmp_path / 'mounts')!r})\n"
        f"fake.write_text(table + 'nfs.lab:/export {tmp_path / 'share'} nfs4 rw 0 0\\n')\n"
        "filesystems.MOUNTS = fake\n"
        "from registrum.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    (tmp_path / "share").mkdir()
    database = f"sqlite:///{tmp_path / 'share' / 'r.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, "server", "--port", "1", "--store", database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to start" in done.stderr
    assert "network file system (nfs4 nfs.lab:/export" in done.stderr
    assert "PostgreSQL" in done.stderr
    assert not (tmp_path / "share" / "r.db").exists()
