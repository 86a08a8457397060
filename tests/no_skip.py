"""Under REGISTRUM_TEST_NO_SKIP=1 a skip fails the run, with the skip's reason.

CI (`make test`, `.ci/run`) sets it: there a missing PostgreSQL, Chromium or
framework must fail loudly instead of silently skipping every case that needs
it. Every kind of skip is covered: `pytest.skip` and `importorskip` in a test
or fixture, `skipif` marks (reported at setup), and a module that skips at
import (reported at collection, where the failure is a collection error).
An expected failure (xfail) is not a skip and is left alone.

A test that may skip even in CI, because of the platform rather than a missing
dependency, says why with `@pytest.mark.may_skip("...")`.

`tests/conftest.py` imports these hooks; `test_no_skip.py` loads this module
as a plugin (`-p no_skip`) into a pytest run of its own.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

ENV = "REGISTRUM_TEST_NO_SKIP"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"may_skip(reason): the test may skip even under {ENV}=1 (a platform limit, "
        "not a missing dependency)",
    )


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    longrepr = report.longrepr
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped, which {ENV}=1 does not allow: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and enabled()
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("may_skip") is None
    ):
        _fail(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped and enabled():
        _fail(report)
    return report
