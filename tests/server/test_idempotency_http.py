"""The `Idempotency-Key` header over a real server (SQLite and PostgreSQL): a write sent again
with its key is made once and answered alike, also when the first answer is really lost on
the way back to the client, which then retries on its own."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from backends import BACKENDS, backend_params
from registrum.client._wire import KEYED_PAUSES
from registrum.client.http import HttpStore
from registrum.client.writer import deliver
from serving import auth_server


@pytest.fixture(params=backend_params(["http-sqlite", "http-postgres"]))
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpStore]:
    """An HttpStore over a real server on a fresh store (SQLite or PostgreSQL)."""
    with BACKENDS[request.param](tmp_path) as store:
        yield store


def weights(client: HttpStore, data: bytes = b"weights") -> list[dict[str, Any]]:
    info = client.put_blob(io.BytesIO(data))
    return [{"path": "w.bin", "sha256": info.sha256, "size": info.size}]


def post(client: HttpStore, path: str, body: Any, key: str | None, **kw: Any) -> Any:
    headers = {k: x for k, x in client.session.headers.items() if k == "authorization"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(f"{client.api}{path}", json=body, headers=headers, timeout=30, **kw)


def versions(client: HttpStore, model: str = "m") -> list[int]:
    return [v.version for v in client.list_model_versions(model)]


def test_a_registration_sent_again_with_its_key_is_made_once(client: HttpStore) -> None:
    body = {"project": "p", "files": weights(client), "metrics": {"acc": 0.5}}
    first = post(client, "/models/m/versions", body, "reg-1")
    again = post(client, "/models/m/versions", body, "reg-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and first.json()["version"] == 1
    assert versions(client) == [1]
    assert post(client, "/models/m/versions", body, "reg-2").json()["version"] == 2
    assert post(client, "/models/m/versions", body, None).json()["version"] == 3


def test_concurrent_requests_with_one_key_make_one_version(client: HttpStore) -> None:
    body = {"project": "p", "files": weights(client)}
    start, answers = threading.Barrier(8), []

    def send() -> None:
        start.wait()
        answers.append(post(client, "/models/m/versions", body, "same"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.content for a in answers}) == 1
    assert versions(client) == [1]


def test_the_same_key_with_another_body_is_409_and_changes_nothing(client: HttpStore) -> None:
    files = weights(client)
    post(client, "/models/m/versions", {"project": "p", "files": files}, "k")
    other = post(
        client, "/models/m/versions", {"project": "p", "files": files, "description": "x"}, "k"
    )
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "different request" in error["message"] and "new key" in error["message"]
    assert versions(client) == [1]


@pytest.mark.parametrize(
    ("header", "says"),
    [("x" * 256, "256 characters"), ("caf\u00e9".encode(), "printable ASCII")],
)
def test_a_bad_key_is_400(client: HttpStore, header: str | bytes, says: str) -> None:
    body = {"project": "p", "files": weights(client)}
    answer = requests.post(
        f"{client.api}/models/m/versions",
        json=body,
        headers={"Idempotency-Key": header},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_argument"
    assert says in answer.json()["error"]["message"]
    assert client.list_models() == []


def test_alias_moves_and_promotion_requests_sent_again_are_made_once(client: HttpStore) -> None:
    files = weights(client)
    for _ in range(2):
        client.register_model_version("m", project="p", files=files)
    client.set_alias("m", "champion", 1)
    move = {"version": 2, "expected_version": 1}
    url = f"{client.api}/models/m/aliases/champion"
    first = requests.put(url, json=move, headers={"Idempotency-Key": "mv"}, timeout=30)
    again = requests.put(url, json=move, headers={"Idempotency-Key": "mv"}, timeout=30)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert [h["to_version"] for h in client.alias_history("m", "champion")] == [1, 2]

    client.set_policy("m", protected=["prod"])
    ask = {"alias": "prod", "version": 2, "comment": "ship it"}
    opened = post(client, "/models/m/requests", ask, "ask")
    reopened = post(client, "/models/m/requests", ask, "ask")
    assert (opened.status_code, reopened.status_code) == (201, 201)
    assert reopened.json() == opened.json()
    assert [r["id"] for r in client.list_requests("m")] == [opened.json()["id"]]
    cancel = f"/requests/{opened.json()['id']}/cancel"
    done = post(client, cancel, {"comment": None}, "cancel")
    assert post(client, cancel, {"comment": None}, "cancel").json() == done.json()
    assert done.json()["state"] == "cancelled"


def test_another_users_key_never_matches(tmp_path: Path) -> None:
    with auth_server(tmp_path, ("alice", "bob")) as (url, admin, tokens):
        admin.create_project("p")
        admin.add_member("p", "alice", "editor")
        admin.add_member("p", "bob", "editor")
        answers = {}
        for name in ("alice", "bob"):
            with closing(HttpStore(url, token=tokens[name])) as user:
                body = {"project": "p", "files": weights(user)}
                sent = [post(user, "/models/m/versions", body, "shared") for _ in range(2)]
                assert sent[0].json() == sent[1].json()
                answers[name] = sent[0].json()["version"]
        assert answers == {"alice": 1, "bob": 2}
        assert versions(admin) == [2, 1]


class LosingProxy:
    """A loopback TCP relay to a server that drops the answers of the first `lose` requests
    whose request line starts with `match`: the server gets and makes them, then the
    client's connection is closed before any byte of the answer reaches it."""

    def __init__(self, target: str, match: bytes, lose: int = 1) -> None:
        self.target = urlsplit(target).port
        self.match, self.lose, self.lost = match, lose, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.target))
            dropping = threading.Event()
            threading.Thread(target=self._up, args=(near, far, dropping), daemon=True).start()
            threading.Thread(target=self._down, args=(far, near, dropping), daemon=True).start()

    def _up(self, near: socket.socket, far: socket.socket, dropping: threading.Event) -> None:
        with closing(far):
            while data := _recv(near):
                with self._lock:
                    if data.startswith(self.match) and self.lost < self.lose:
                        self.lost += 1
                        dropping.set()
                far.sendall(data)

    def _down(self, far: socket.socket, near: socket.socket, dropping: threading.Event) -> None:
        with closing(near):
            while data := _recv(far):
                if dropping.is_set():
                    near.shutdown(socket.SHUT_RDWR)  # the answer is lost on the way
                    return
                near.sendall(data)

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@contextmanager
def losing_proxy(client: HttpStore, match: bytes) -> Iterator[LosingProxy]:
    proxy = LosingProxy(client.url, match)
    try:
        yield proxy
    finally:
        proxy.close()


def test_the_client_retries_a_lost_answer_and_gets_the_first_result(client: HttpStore) -> None:
    files = weights(client)
    with (
        losing_proxy(client, b"POST /api/v1/models/m/versions") as proxy,
        closing(HttpStore(proxy.url)) as through,
    ):
        made = through.register_model_version("m", project="p", files=files, metrics={"a": 1.0})
        assert proxy.lost == 1  # the server made it once and its answer never arrived
    assert made.version == 1 and made.metrics == {"a": 1.0}
    assert versions(client) == [1]
    assert client.get_model_version("m@1") == made


def test_a_lost_answer_to_an_alias_move_is_not_a_lost_race(client: HttpStore) -> None:
    files = weights(client)
    for _ in range(2):
        client.register_model_version("m", project="p", files=files)
    client.set_alias("m", "champion", 1)
    with (
        losing_proxy(client, b"PUT /api/v1/models/m/aliases/champion") as proxy,
        closing(HttpStore(proxy.url)) as through,
    ):
        moved = through.set_alias("m", "champion", 2, expected_version=1)
        assert proxy.lost == 1
    assert moved.version == 2 and "champion" in moved.aliases
    assert [h["to_version"] for h in client.alias_history("m", "champion")] == [1, 2]


def test_a_lost_answer_to_a_promotion_request_opens_one_request(client: HttpStore) -> None:
    client.register_model_version("m", project="p", files=weights(client))
    client.set_policy("m", protected=["prod"])
    with (
        losing_proxy(client, b"POST /api/v1/models/m/requests") as proxy,
        closing(HttpStore(proxy.url)) as through,
    ):
        opened = through.request_promotion("m", "prod", 1)
        assert proxy.lost == 1
    assert [r["id"] for r in client.list_requests("m")] == [opened["id"]]


def test_a_spooled_registration_delivered_twice_makes_one_version(client: HttpStore) -> None:
    # What `registrum sync` sends again when a process died after delivering an event and
    # before marking it delivered: the same event, with the key it was spooled with.
    run = client.create_run("p")
    artifact = client.create_artifact("p", "m", type="model", files=weights(client))
    event = {
        "op": "register_model",
        "args": {
            "name": "m",
            "model": {"artifact_id": artifact.id},
            "run_id": run.id,
            "aliases": [],
            "idempotency_key": "spooled-key",
        },
    }
    deliver(client, event)
    deliver(client, event)
    assert versions(client) == [1]


def test_a_connection_refused_is_still_store_unavailable_after_the_retries() -> None:
    from registrum.errors import StoreUnavailable

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    down = HttpStore(f"http://127.0.0.1:{port}", timeout=2)
    with closing(down), pytest.raises(StoreUnavailable, match="cannot reach"):
        down.set_alias("m", "champion", 1)


def test_http_client_keeps_no_key_between_writes(client: HttpStore) -> None:
    # Two calls are two writes: each gets its own key.
    files = weights(client)
    client.register_model_version("m", project="p", files=files)
    client.register_model_version("m", files=files)
    assert versions(client) == [2, 1]


def test_a_run_whose_registration_answers_are_lost_makes_one_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every answer of the HTTP client's own attempts is lost, so the registration waits in
    # the spool and the writer delivers it again later: with the key it was spooled with.
    import registrum
    from registrum.server import Settings
    from serving import running_server

    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w" * 1000)
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url, closing(HttpStore(url)) as reader:
        attempts = 1 + len(KEYED_PAUSES)
        proxy = LosingProxy(url, b"POST /api/v1/models/m/versions", lose=attempts)
        try:
            run = registrum.init(project="p", store=proxy.url)
            assert run.register_model("m", path=weights) is None  # queued, not lost
            run.finish(timeout=60)
        finally:
            proxy.close()
        assert proxy.lost == attempts
        assert [v.version for v in reader.list_model_versions("m")] == [1]
        assert reader.get_model_version("m@1").run_id == run.id
