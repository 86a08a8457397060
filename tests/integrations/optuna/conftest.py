"""Optuna tests: Optuna's per-trial log lines kept quiet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _quiet_optuna() -> Iterator[None]:
    optuna = pytest.importorskip("optuna", reason="needs optuna: pip install -e .[all]")
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(previous)
