"""Waiting in tests: poll a condition until it holds or a deadline passes, instead of sleeping
for a guessed time and then asserting (too short on a busy machine, too long elsewhere)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    what: str = "",
    timeout: float = 30.0,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Calls `predicate` every 20 ms until it returns something true, and returns that; fails
    the test, saying `what` it waited for, once `timeout` seconds have passed. An exception
    of a type in `ignoring` counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except ignoring:
            result = None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or 'the condition'}")
        time.sleep(0.02)
