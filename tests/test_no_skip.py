"""REGISTRUM_TEST_NO_SKIP=1 turns every skip into a failure with its reason, in a real pytest
run of its own (the hooks of `no_skip.py` loaded as a plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPS = """
import pytest

@pytest.fixture
def server():
    pytest.skip("PostgreSQL is unreachable")

def test_skips_in_the_body():
    pytest.skip("Chromium is not installed")

def test_skips_in_a_fixture(server):
    pass

@pytest.mark.skipif(True, reason="needs git on PATH")
def test_skipped_by_a_mark():
    pass

def test_imports_or_skips():
    pytest.importorskip("registrum_no_such_framework")

@pytest.mark.may_skip("the platform cannot mount a tmpfs")
def test_may_skip():
    pytest.skip("cannot mount a tmpfs here")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False

def test_passes():
    pass
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("registrum_no_such_framework")

def test_never_collected():
    pass
"""


def pytest_run(
    folder: Path, source: str, *, no_skip: str | None
) -> subprocess.CompletedProcess[str]:
    (folder / "test_it.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "REGISTRUM_TEST_NO_SKIP"}
    if no_skip is not None:
        env["REGISTRUM_TEST_NO_SKIP"] = no_skip
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no_skip",
            "-p",
            "no:cacheprovider",
            "-rA",
            "test_it.py",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("no_skip", [None, "0"])
def test_without_the_variable_skips_are_skips(tmp_path: Path, no_skip: str | None) -> None:
    done = pytest_run(tmp_path, SKIPS, no_skip=no_skip)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 5 skipped, 1 xfailed" in done.stdout


def test_with_the_variable_every_skip_fails_with_its_reason(tmp_path: Path) -> None:
    done = pytest_run(tmp_path, SKIPS, no_skip="1")
    assert done.returncode == 1, done.stdout + done.stderr
    # A skip in setup (a fixture, a mark) is an error, one in the test's body a failure.
    assert "2 failed, 1 passed, 1 skipped, 1 xfailed, 2 errors" in done.stdout
    for test, reason in (
        ("ERROR test_it.py::test_skips_in_a_fixture", "PostgreSQL is unreachable"),
        ("ERROR test_it.py::test_skipped_by_a_mark", "needs git on PATH"),
        ("FAILED test_it.py::test_skips_in_the_body", "Chromium is not installed"),
        (
            "FAILED test_it.py::test_imports_or_skips",
            "could not import 'registrum_no_such_framework'",
        ),
    ):
        assert test in done.stdout
        assert f"skipped, which REGISTRUM_TEST_NO_SKIP=1 does not allow: {reason}" in done.stdout
    assert "SKIPPED [1] test_it.py:23: cannot mount a tmpfs here" in done.stdout


def test_a_module_that_skips_at_import_is_a_collection_error(tmp_path: Path) -> None:
    assert pytest_run(tmp_path, SKIPPED_MODULE, no_skip=None).returncode == 5  # nothing ran
    done = pytest_run(tmp_path, SKIPPED_MODULE, no_skip="1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ERROR test_it.py" in done.stdout
    assert "does not allow: could not import 'registrum_no_such_framework'" in done.stdout
