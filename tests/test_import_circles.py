"""Modules that once imported each other, and must not again: each pair has one direction.

`server/settings.py` checks the webhook worker's options itself (the worker imports
`Settings`), and fingerprints build on `capture/_digest.py`, below both `fingerprint.py`
(which calls into `_arrays.py`) and `_arrays.py`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import registrum

ROOT = Path(registrum.__file__).parent


def _imported(module: str) -> set[str]:
    """Every module `module` imports, at the top or inside a function."""
    path = ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("module", "never"),
    [
        ("registrum.server.settings", "registrum.server.webhooks"),
        ("registrum.capture._arrays", "registrum.capture.fingerprint"),
        ("registrum.capture._digest", "registrum.capture.fingerprint"),
        ("registrum.capture._digest", "registrum.capture._arrays"),
    ],
)
def test_no_import_back(module: str, never: str) -> None:
    assert never not in _imported(module)


@pytest.mark.parametrize(
    "module",
    [
        "registrum.capture._digest",
        "registrum.capture._arrays",
        "registrum.capture.fingerprint",
        "registrum.server.settings",
        "registrum.server.webhooks",
    ],
)
def test_each_imports_alone(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_settings_check_the_webhook_options() -> None:
    from registrum.server.settings import Settings

    for options, message in [
        ({"webhook_timeout": 0}, "the webhook timeout must be above 0 seconds, got 0"),
        ({"webhook_poll_interval": -1}, "the webhook poll interval must be above 0 seconds"),
        ({"webhook_retry_delay": -1}, "the webhook retry delay must not be negative, got -1"),
        ({"webhook_max_attempts": 0}, "webhook max attempts must be at least 1, got 0"),
        ({"webhook_senders": -1}, "webhook senders must be 0 (off) or more, got -1"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Settings(**options)  # type: ignore[arg-type]
    assert Settings(webhook_senders=0, webhook_retry_delay=0).webhook_senders == 0
