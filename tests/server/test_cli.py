import subprocess
import sys
from pathlib import Path

import pytest


def registrum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_server_help_names_every_option() -> None:
    out = registrum("server", "--help")
    assert out.returncode == 0
    for option in ("--host", "--port", "--store", "--blobs", "--max-body-mb"):
        assert option in out.stdout


@pytest.mark.parametrize(
    ("store", "fragment"),
    [
        ("mysql://x/y", "unsupported database 'mysql'"),
        ("postgresql+psycopg://postgres@127.0.0.1:9/nope", "cannot open the store"),
        ("not a url", "is not a database URL"),
    ],
)
def test_a_bad_store_is_one_clear_line(store: str, fragment: str, tmp_path: Path) -> None:
    out = registrum("server", "--port", "1", "--store", store, "--blobs", str(tmp_path))
    assert out.returncode == 2
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr
