"""Real servers on loopback ports: uvicorn in a test thread, or `registrum server` as a process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import uvicorn

from registrum.server import Settings, create_app


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serves an ASGI app on 127.0.0.1:<free port>; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """A server for `settings`; yields the base URL."""
    with serve_app(create_app(settings)) as url:
        yield url


ADMIN_TOKEN = "rgm_test-admin-token-0123456789abcdef"


@contextmanager
def auth_server(
    folder: Path, users: tuple[str, ...], **settings: Any
) -> Iterator[tuple[str, Any, dict[str, str]]]:
    """A server with auth on a fresh SQLite store under `folder`, with `users` made by the
    first admin (token ADMIN_TOKEN, under "admin"). Yields the URL, an HttpStore signed in as
    the admin, and every user's token by name."""
    from contextlib import closing

    from registrum.client.http import HttpStore

    config = Settings(
        store_url=f"sqlite:///{folder}/db.sqlite",
        blobs=folder / "blobs",
        auth=True,
        admin_token=ADMIN_TOKEN,
        **settings,
    )
    with running_server(config) as url, closing(HttpStore(url, token=ADMIN_TOKEN)) as admin:
        tokens = {"admin": ADMIN_TOKEN}
        for name in users:
            admin.create_user(name)
            made = admin.create_token(user=name)
            assert made.token is not None
            tokens[name] = made.token
        yield url, admin, tokens


def stop(proc: subprocess.Popen[Any]) -> None:
    """Terminates `proc` if it still runs; kills it if it has not exited after 10 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str  # the API root, http://127.0.0.1:PORT/api/v1
    root: str  # http://127.0.0.1:PORT
    pid: int
    blobs: Path
    proc: subprocess.Popen[bytes]


@contextmanager
def server_process(
    folder: Path, *, port: int | None = None, options: Sequence[str] = ()
) -> Iterator[ServerProcess]:
    """`registrum server` as a subprocess on a loopback port, its store in `folder`, with more
    command-line `options`."""
    port = port or free_port()
    blobs = folder / "blobs"
    cmd = [sys.executable, "-m", "registrum.cli", "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--store", f"sqlite:///{folder}/r.db", "--blobs", str(blobs)]
    cmd += ["--log-level", "warning", *options]
    root = f"http://127.0.0.1:{port}"
    with subprocess.Popen(cmd) as proc:
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"the server exited with code {proc.returncode}"
                try:
                    with requests.get(f"{root}/api/v1/health", timeout=1) as r:
                        if r.status_code == 200:
                            break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the server did not become healthy in 60 s"
                time.sleep(0.05)
            yield ServerProcess(f"{root}/api/v1", root, proc.pid, blobs, proc)
        finally:
            stop(proc)
