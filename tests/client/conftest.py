"""Client fixtures: where runs go (embedded or a real server), and a reader to check them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import Target


@pytest.fixture(params=["embedded", "http"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "20")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    monkeypatch.delenv("REGISTRUM_MODE", raising=False)
    if request.param == "embedded":
        from registrum.store import open_store

        home.mkdir()
        reader = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
        yield Target(None, reader, home)
        reader.close()
        return
    from registrum.client.http import HttpStore
    from registrum.server import Settings
    from serving import running_server

    settings = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        reader = HttpStore(url)
        yield Target(url, reader, home)
        reader.close()
