"""A full disk during a blob upload: a clear 507, no partial file left behind, and partial
uploads of a killed server swept at start and periodically.

The disk fills for real: a small tmpfs where mounting is allowed (root), and everywhere a
process whose file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes writes fail with
EFBIG, as a quota would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import requests

from polling import wait_for
from registrum.client.http import HttpStore
from registrum.errors import InsufficientStorage
from registrum.store import open_store
from serving import free_port

LIMIT = 4 << 20  # bytes that fit: the small volume's size, or the file size limit
TOO_BIG = 12 << 20  # an upload that does not fit


def partials(blobs: Path) -> list[Path]:
    return sorted((blobs / "tmp").glob("*")) if (blobs / "tmp").is_dir() else []


@contextmanager
def small_volume(folder: Path) -> Iterator[Path]:
    """A tmpfs of LIMIT bytes mounted at `folder`; skips where mounting is not allowed."""
    folder.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux; the file-size-limit case still runs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the other case runs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


SERVER = textwrap.dedent(
    """
    import resource, signal, sys
    import uvicorn
    from registrum.server import Settings, create_app

    folder, blobs, port, max_age, limit = sys.argv[1:6]
    if int(limit):
        # A write past the limit fails with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    settings = Settings(
        store_url=f"sqlite:///{folder}/r.db",
        blobs=blobs,
        partial_upload_max_age=float(max_age),
        webhook_senders=0,
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(port), log_level="warning")
    """
)


@contextmanager
def server(
    folder: Path, blobs: Path, *, max_age: float = 3600.0, fsize_limit: int = 0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real server process over a SQLite store in `folder` and blobs in `blobs`."""
    port = free_port()
    args = [str(folder), str(blobs), str(port), str(max_age), str(fsize_limit)]
    root = f"http://127.0.0.1:{port}"
    with subprocess.Popen([sys.executable, "-c", SERVER, *args]) as proc:
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"the server exited with code {proc.returncode}"
                try:
                    if requests.get(f"{root}/api/v1/health", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the server did not start in 60 s"
                time.sleep(0.05)
            yield root, proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def check_full_disk_over_http(root: str, blobs: Path) -> None:
    data = os.urandom(TOO_BIG)
    with closing(HttpStore(root)) as client:
        for sha256 in (
            None,
            hashlib.sha256(data).hexdigest(),
        ):  # hashed on arrival, and declared up front
            with pytest.raises(InsufficientStorage, match="no space left") as caught:
                client.put_blob(io.BytesIO(data), sha256=sha256)
            assert caught.value.status == 507
            assert partials(blobs) == []
        r = requests.post(f"{root}/api/v1/blobs", data=iter([data[i::4] for i in range(4)]))
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
        assert "Free space" in r.json()["error"]["message"]
        assert partials(blobs) == []
        # The failed uploads hold no space: the store goes on working.
        run = client.create_run("p")
        small = client.put_blob(io.BytesIO(b"fits"))
        assert b"".join(client.read_blob(small.sha256)) == b"fits"
        assert client.get_run(run.id).id == run.id


@pytest.mark.may_skip("mounting a tmpfs needs root and a container that allows it")
def test_a_full_volume_gives_507_and_keeps_no_partial_file(tmp_path: Path) -> None:
    # The database shares the small volume, as on a single-disk host: a partial file left
    # behind would keep every later write failing.
    with small_volume(tmp_path / "small") as volume, server(volume, volume / "blobs") as served:
        check_full_disk_over_http(served[0], volume / "blobs")


def test_a_file_size_limit_gives_507_and_keeps_no_partial_file(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    with server(tmp_path, blobs, fsize_limit=LIMIT) as (root, _):
        check_full_disk_over_http(root, blobs)


EMBEDDED = textwrap.dedent(
    """
    import io, json, os, resource, signal, sys
    from registrum.errors import InsufficientStorage
    from registrum.store import open_store

    folder, limit = sys.argv[1], int(sys.argv[2])
    store = open_store(f"sqlite:///{folder}/r.db", blobs=f"{folder}/blobs")
    store.create_run("p")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        store.put_blob(io.BytesIO(os.urandom(3 * limit)))
    except InsufficientStorage as exc:
        outcome = {"error": type(exc).__name__, "message": exc.message}
    else:
        outcome = {"error": None}
    outcome["partials"] = os.listdir(f"{folder}/blobs/tmp")
    outcome["after"] = store.put_blob(io.BytesIO(b"fits")).size
    print(json.dumps(outcome))
    """
)


def test_the_embedded_store_answers_a_full_disk_the_same(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED, str(tmp_path), str(LIMIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome = json.loads(done.stdout)
    assert outcome["error"] == "InsufficientStorage" and "Free space" in outcome["message"]
    assert outcome["partials"] == [] and outcome["after"] == 4


@pytest.mark.may_skip("mounting a tmpfs needs root and a container that allows it")
def test_the_embedded_store_on_a_full_tmpfs(tmp_path: Path) -> None:
    with small_volume(tmp_path / "small") as volume:
        store = open_store(f"sqlite:///{tmp_path}/r.db", blobs=volume / "blobs")
        with closing(store):
            with pytest.raises(InsufficientStorage):
                store.put_blob(io.BytesIO(os.urandom(TOO_BIG)))
            with pytest.raises(InsufficientStorage):
                store.put_blob([os.urandom(1 << 20)] * 12, sha256="0" * 64)
            assert partials(volume / "blobs") == []
            assert store.put_blob(io.BytesIO(b"fits")).size == 4


def start_upload(root: str, size: int) -> socket.socket:
    """Begins a PUT of a `size`-byte blob and sends its first 8 MiB, leaving it unfinished."""
    host, port = root.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"PUT /api/v1/blobs/{'1' * 64} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Length: {size}\r\n\r\n".encode()
    )
    sock.sendall(b"x" * (8 << 20))
    return sock


def test_a_partial_upload_of_a_killed_server_is_swept(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    with server(tmp_path, blobs, max_age=1.0) as (root, proc):
        sock = start_upload(root, 64 << 20)
        wait_for(lambda: partials(blobs), "the upload has a partial file")
        proc.kill()
        proc.wait()
        sock.close()
    [left] = partials(blobs)  # what a SIGKILL leaves behind
    with server(tmp_path, blobs, max_age=1.0) as (root, proc):
        # Swept once no writer has touched it for the threshold, without a request.
        wait_for(lambda: not left.exists(), "the partial file is swept")
        assert requests.get(f"{root}/api/v1/health", timeout=5).status_code == 200


def test_opening_a_store_sweeps_stale_partial_uploads(tmp_path: Path) -> None:
    temp = tmp_path / "blobs" / "tmp"
    temp.mkdir(parents=True)
    stale, fresh = temp / "dead.part", temp / "live.part"
    stale.write_bytes(b"left by a killed writer")
    fresh.write_bytes(b"being written now")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    with closing(open_store(f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")) as store:
        assert not stale.exists() and fresh.exists()
        assert store.sweep_partial_uploads(0.0) == 1
    assert not fresh.exists()
