"""Lightning tests: the framework's own known warnings are let through, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent

# Warnings Lightning and torch give about their own internals or about the tiny test setup,
# matched precisely; anything else (ours included) still fails the test.
KNOWN_WARNINGS = (
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning",
    r"ignore:The '\w+_dataloader' does not have many workers:UserWarning",
    r"ignore:The number of training batches \(\d+\) is smaller than the logging interval",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            for spec in KNOWN_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))
