import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from registrum.client.http import HttpStore
from registrum.errors import StoreUnavailable
from registrum.server import Settings
from serving import running_server


@pytest.fixture
def client(tmp_path: Path) -> Iterator[HttpStore]:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        store = HttpStore(url)
        yield store
        store.close()


def never_read() -> Iterator[bytes]:
    raise AssertionError("the content of a stored blob was sent again")
    yield b""  # pragma: no cover


def test_a_stored_blob_is_not_sent_again(client: HttpStore) -> None:
    data = b"checkpoint" * 1000
    sha = hashlib.sha256(data).hexdigest()
    first = client.put_blob(io.BytesIO(data))
    assert (first.sha256, first.size) == (sha, len(data))
    again = client.put_blob(never_read(), sha256=sha)
    assert (again.sha256, again.size) == (sha, len(data))


def test_unseekable_content_is_hashed_then_sent(client: HttpStore) -> None:
    chunks = [b"a" * 3000, b"b" * 5000]
    info = client.put_blob(iter(chunks))
    assert info.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert b"".join(client.read_blob(info.sha256)) == b"".join(chunks)
    assert b"".join(client.read_blob(info.sha256, 2999, 3000)) == b"ab"


def test_an_unreachable_server_is_store_unavailable() -> None:
    store = HttpStore("http://127.0.0.1:9", timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.get_run("abc")
    store.close()
