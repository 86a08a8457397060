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


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (("--webhook-timeout", "0"), "the webhook timeout must be above 0 seconds, got 0.0"),
        (("--webhook-attempts", "0"), "webhook max attempts must be at least 1, got 0"),
        (("--webhook-senders", "-1"), "webhook senders must be 0 (off) or more, got -1"),
        (
            ("--gc-interval", "daily"),
            "--gc-interval 'daily' is not a duration: write a number and a unit, such as "
            "0s, 30m, 12h, 7d or 2w",
        ),
    ],
)
def test_a_webhook_option_that_cannot_work_is_one_clear_line(
    option: tuple[str, str], fragment: str, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    out = registrum("server", "--port", "1", "--store", store, *option)
    assert out.returncode == 2
    assert out.stderr == f"registrum server: {fragment}\n"
    assert not (tmp_path / "r.db").exists()
