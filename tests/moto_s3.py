"""A real S3 wire protocol for tests: moto's server mode on a loopback port, started once per
test session, and a fresh bucket per test.

`s3_env` sets the standard AWS variables (credentials, region, `AWS_ENDPOINT_URL`) for the
test, so the code under test finds the endpoint exactly as it would find MinIO or AWS.
"""

from __future__ import annotations

import atexit
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

_lock = threading.Lock()
_server: Any = None
_url: str | None = None

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "registrum-test",
    "AWS_SECRET_ACCESS_KEY": "registrum-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


_SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test session ends and closes the pipe
server.stop()
"""


def moto_url() -> str:
    """The endpoint of the session's moto server, started on first use. It runs in a process
    of its own, as a real object store would: its memory and CPU are not the tests'."""
    global _server, _url
    with _lock:
        if _url is None:
            proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            _server, _url = proc, f"http://127.0.0.1:{port}"
            atexit.register(_stop, proc)
        return _url


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def new_bucket() -> str:
    """A fresh, empty bucket on the moto server (the AWS variables must be set)."""
    import boto3

    name = f"registrum-{secrets.token_hex(6)}"
    boto3.client("s3", endpoint_url=moto_url()).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The standard AWS variables, pointing at the moto server; yields its endpoint."""
    url = moto_url()
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield url


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh bucket; the AWS variables point at it for the test."""
    return new_bucket()
