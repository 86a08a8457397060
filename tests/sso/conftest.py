"""Fixtures of the single sign-on tests: a real OpenID provider and a server over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sso_server import Sso, sso_servers


@pytest.fixture
def sso_server(tmp_path: Path) -> Iterator[Callable[..., Sso]]:
    """Makes a provider and a server over it (see `sso_server.sso_servers`)."""
    with sso_servers(tmp_path) as make:
        yield make
