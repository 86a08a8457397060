"""Helpers for the browser tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import registrum


def open_page(page: Any, url: str) -> Any:
    """Goes to `url` and waits until the page has rendered with its data
    (see `wait_ready`)."""
    page.goto(url)
    return wait_ready(page)


def wait_ready(page: Any) -> Any:
    """Waits until the page for the current address has rendered with its data (the router
    marks `main#page` ready, with the address it rendered)."""
    page.wait_for_function(
        "() => { const m = document.querySelector('main#page');"
        " return !!m && m.dataset.ready === 'true' && m.dataset.route === location.hash; }"
    )
    return page


@contextmanager
def tracking(home: Path, token: str | None = None) -> Iterator[None]:
    """The environment of a script that tracks runs: its own REGISTRUM_HOME, strict (a
    failure raises), the store given to `registrum.init`, and `token`, if any."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGISTRUM_HOME", str(home))
        env.setenv("REGISTRUM_STRICT", "1")
        env.delenv("REGISTRUM_URL", raising=False)
        if token is None:
            env.delenv("REGISTRUM_TOKEN", raising=False)
        else:
            env.setenv("REGISTRUM_TOKEN", token)
        yield


def start_run(store: str, project: str, name: str | None = None, **options: Any) -> registrum.Run:
    """A run on `store` made through the client, without the environment and code captures
    (which the pages under test do not need, and which take time)."""
    return registrum.init(
        project=project,
        name=name,
        store=store,
        capture_environment=False,
        capture_code=False,
        **options,
    )
