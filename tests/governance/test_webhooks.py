"""Webhooks: signed deliveries to a real local receiver, retries with backoff, scoping to a
project or a model, a hanging receiver, bad input, restarts; the service layer on SQLite and
PostgreSQL.

The receivers listen on loopback, which webhooks may reach only when private targets are
allowed: every server and store here allows them explicitly (what the default refuses is
tested in tests/server/test_webhook_targets.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

import registrum
from polling import wait_for
from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import InvalidArgument, ModelNotFound, NotFound, ProjectNotFound
from registrum.server import Settings
from registrum.server.webhooks import delivery_headers
from registrum.store import open_store
from registrum.store.service import Store
from serving import running_server

FILES = [{"path": "m.bin", "sha256": hashlib.sha256(b"weights").hexdigest(), "size": 7}]


def with_weights(store: Any) -> Any:
    """`store`, holding the blob that `FILES` names."""
    store.put_blob(iter([b"weights"]))
    return store


@contextmanager
def connected(url: str) -> Iterator[tuple[registrum.Client, HttpStore]]:
    """A `registrum.Client` and an `HttpStore` on the server at `url`."""
    with registrum.Client(url) as client:
        store = with_weights(HttpStore(url))
        try:
            yield client, store
        finally:
            store.close()


# -- a receiver --------------------------------------------------------------------------


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on a free loopback port that checks each POST's signature with its
    own HMAC code, records it, and answers `answers` in turn (then 200), or hangs."""

    def __init__(self, answers: tuple[int, ...] = (), *, hang: bool = False) -> None:
        self.secret: str | None = None
        self.answers = list(answers)
        self.hang = hang
        self.release = threading.Event()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                signed = receiver.check(body, self.headers.get("x-registrum-signature"))
                with receiver.lock:
                    headers = {k.lower(): x for k, x in self.headers.items()}
                    receiver.received.append(Received(time.monotonic(), headers, body, signed))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                self.send_response(status if signed else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def check(self, body: bytes, header: str | None) -> bool:
        if self.secret is None or header is None:
            return False
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={expected}", header)

    def payloads(self) -> list[Any]:
        with self.lock:
            return [r.payload for r in self.received]

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(10)


def fast(tmp_path: Path, **options: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_poll_interval": 0.05,
        "webhook_retry_delay": 0.05,
        "webhook_max_attempts": 3,
        "webhook_timeout": 2.0,
        "allow_private_webhooks": True,
        **options,
    }
    return Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs", **values)


def settled(client: registrum.Client, hook_id: str, count: int) -> list[dict[str, Any]] | None:
    """The hook's deliveries once there are `count`, none pending."""
    found = client.webhook_deliveries(hook_id)
    if len(found) == count and all(d["status"] != "pending" for d in found):
        return found
    return None


# -- delivery through a real server -------------------------------------------------------


def test_signed_deliveries_are_retried_with_backoff_until_they_go_through(
    tmp_path: Path,
) -> None:
    flaky, broken = Receiver((500, 500)), Receiver((500, 500, 500, 500))
    settings = fast(tmp_path, webhook_retry_delay=0.2)
    with (
        flaky.running(),
        broken.running(),
        running_server(settings) as url,
        connected(url) as (client, store),
    ):
        store.create_project("p")
        hook = client.add_webhook(flaky.url, ["run.finished"], project="p")
        flaky.secret = hook["secret"]
        assert len(hook["secret"]) >= 32
        other = client.add_webhook(
            broken.url, ["run.finished"], project="p", secret="s" * 16 + "-chosen"
        )
        broken.secret = "s" * 16 + "-chosen"
        run = store.create_run("p", name="r")
        store.finish_run(run.id)

        [done] = wait_for(lambda: settled(client, hook["id"], 1))
        [failed] = wait_for(lambda: settled(client, other["id"], 1))

    assert done["status"] == "delivered"
    assert done["attempts"] == 3
    assert done["last_status"] == 200 and done["last_error"] is None
    assert done["delivered_at"] >= done["created_at"]
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3
    assert failed["last_status"] == 500 and "HTTP 500" in failed["last_error"]

    tries = flaky.received
    assert len(tries) == 3
    assert all(r.signed for r in tries + broken.received)
    assert len({r.body for r in tries}) == 1  # the same signed body on every try
    # Exponential backoff: 0.2 s, then 0.4 s.
    assert tries[1].at - tries[0].at >= 0.2
    assert tries[2].at - tries[1].at >= 0.4
    first = tries[0]
    assert first.headers["x-registrum-event"] == "run.finished"
    assert first.headers["x-registrum-delivery"] == str(done["id"])
    assert first.headers["content-type"] == "application/json"
    payload = first.payload
    assert payload["webhook_id"] == hook["id"]
    assert payload["delivery_id"] == done["id"]
    assert payload["event_id"] == done["event_id"]
    assert payload["action"] == "run.finished"
    assert payload["project"] == "p"
    assert payload["entity_type"] == "run" and payload["entity_id"] == run.id
    assert payload["actor"].startswith("anonymous@")
    assert payload["before"]["status"] == "running"
    assert payload["after"]["status"] == "finished"
    assert isinstance(payload["at"], float)


def test_a_hanging_receiver_does_not_slow_the_store(tmp_path: Path) -> None:
    hanging = Receiver(hang=True)
    with (
        hanging.running(),
        running_server(fast(tmp_path, webhook_timeout=2.0)) as url,
        connected(url) as (client, store),
    ):
        store.create_project("p")
        hook = client.add_webhook(hanging.url, ["run.finished", "alias.moved"], project="p")
        hanging.secret = hook["secret"]
        took: list[float] = []

        def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            result = call(*args, **kwargs)
            took.append(time.monotonic() - started)
            return result

        for i in range(6):
            run = timed(store.create_run, "p", name=f"r{i}")
            timed(store.register_model_version, "m", run_id=run.id, files=FILES, aliases=["a"])
            timed(store.finish_run, run.id)
            if i == 0:  # the other requests are made while the worker hangs on the receiver
                wait_for(lambda: hanging.received, "the first delivery to reach the receiver")
        # A request that waited on the receiver would take the 2 s timeout at least.
        assert max(took) < 1.5, f"a store request waited {max(took):.2f}s on the receiver"
        retried = wait_for(
            lambda: [
                d for d in client.webhook_deliveries(hook["id"]) if d["last_error"] is not None
            ]
        )
        assert "no answer within 2s" in retried[0]["last_error"]
        assert retried[0]["status"] in ("pending", "failed")


def test_a_model_hook_gets_the_events_of_that_model_only(tmp_path: Path) -> None:
    receiver = Receiver()
    with (
        receiver.running(),
        running_server(fast(tmp_path)) as url,
        connected(url) as (client, store),
    ):
        run = store.create_run("p", name="r")
        store.register_model_version("m1", run_id=run.id, files=FILES)
        store.register_model_version("m2", run_id=run.id, files=FILES)
        hook = client.add_webhook(
            receiver.url, ["alias.moved", "model_version.created"], model="m1"
        )
        receiver.secret = hook["secret"]
        store.register_model_version("m1", run_id=run.id, files=FILES, aliases=["candidate"])
        store.register_model_version("m2", run_id=run.id, files=FILES, aliases=["candidate"])
        store.set_alias("m1", "champion", 1)
        store.set_alias("m2", "champion", 1)
        store.delete_alias("m1", "candidate")  # alias.deleted: not subscribed
        store.update_model_version("m1@1", description="x")  # not subscribed
        store.finish_run(run.id)  # run.finished: not subscribed
        store.register_model_version("m1", run_id=run.id, files=FILES)  # the last one

        deliveries = wait_for(lambda: settled(client, hook["id"], 4))
    expected = [
        ("model_version.created", "m1@2"),
        ("alias.moved", "m1@candidate"),
        ("alias.moved", "m1@champion"),
        ("model_version.created", "m1@3"),
    ]
    payloads = sorted(receiver.payloads(), key=lambda p: p["event_id"])
    assert [(p["action"], p["entity_id"]) for p in payloads] == expected
    assert all(p["model"] == "m1" for p in payloads)
    assert [d["action"] for d in sorted(deliveries, key=lambda d: d["event_id"])] == [
        a for a, _ in expected
    ]
    assert payloads[1]["before"] is None and payloads[1]["after"] == {"version": 2}
    assert payloads[2]["after"] == {"version": 1}
    assert all(r.signed for r in receiver.received)


def test_a_model_hook_gets_its_approval_requests_and_decisions(tmp_path: Path) -> None:
    receiver = Receiver()
    with (
        receiver.running(),
        running_server(fast(tmp_path)) as url,
        connected(url) as (client, store),
    ):
        run = store.create_run("p", name="r")
        store.register_model_version("m", run_id=run.id, files=FILES, aliases=["champion"])
        store.register_model_version("m", run_id=run.id, files=FILES)
        hook = client.add_webhook(
            receiver.url, ["approval.requested", "approval.decided"], model="m"
        )
        receiver.secret = hook["secret"]
        store.set_policy("m", protected=["champion"], allow_self_approval=True)
        request = store.request_promotion("m", "champion", 2, comment="better")
        store.approve_request(request["id"])
        deliveries = wait_for(lambda: settled(client, hook["id"], 2))
    payloads = sorted(receiver.payloads(), key=lambda p: p["event_id"])
    assert [(p["action"], p["model"]) for p in payloads] == [
        ("approval.requested", "m"),
        ("approval.decided", "m"),
    ]
    assert payloads[1]["after"]["decision"] == "approved"
    assert all(d["status"] == "delivered" for d in deliveries)
    assert all(r.signed for r in receiver.received)


def test_a_project_hook_gets_the_events_of_that_project_only(tmp_path: Path) -> None:
    receiver = Receiver()
    with (
        receiver.running(),
        running_server(fast(tmp_path)) as url,
        connected(url) as (client, store),
    ):
        for project in ("p", "q"):
            store.create_project(project)
        hook = client.add_webhook(receiver.url, ["run.finished"], project="p")
        receiver.secret = hook["secret"]
        in_p = [store.create_run("p", name=f"p{i}") for i in range(2)]
        in_q = store.create_run("q", name="q0")
        store.finish_run(in_q.id)
        store.finish_run(in_p[0].id, "failed")
        store.register_model_version("m", run_id=in_p[0].id, files=FILES, aliases=["a"])
        store.finish_run(in_p[1].id)

        wait_for(lambda: settled(client, hook["id"], 2))
    payloads = sorted(receiver.payloads(), key=lambda p: p["event_id"])
    assert [p["entity_id"] for p in payloads] == [in_p[0].id, in_p[1].id]
    assert [p["after"]["status"] for p in payloads] == ["failed", "finished"]
    assert {p["project"] for p in payloads} == {"p"}


def test_pending_deliveries_are_sent_after_a_restart(tmp_path: Path) -> None:
    receiver = Receiver((503,) * 1000)
    settings = fast(tmp_path, webhook_retry_delay=0.3, webhook_max_attempts=50)
    with receiver.running():
        with running_server(settings) as url, connected(url) as (client, store):
            store.create_project("p")
            hook = client.add_webhook(receiver.url, ["run.finished"], project="p")
            receiver.secret = hook["secret"]
            first = store.create_run("p")
            store.finish_run(first.id)
            wait_for(lambda: any(d["attempts"] >= 1 for d in client.webhook_deliveries(hook["id"])))
            # With no server running, another event is made in-process.
        embedded = open_store(settings.store_url, blobs=settings.blobs)
        second = embedded.create_run("p")
        embedded.finish_run(second.id)
        before = embedded.list_deliveries(hook["id"])
        embedded.close()
        assert [d["status"] for d in before] == ["pending"]
        with receiver.lock:
            receiver.answers.clear()
        with running_server(settings) as url, connected(url) as (client, _):
            deliveries = wait_for(lambda: settled(client, hook["id"], 2))
        assert {d["status"] for d in deliveries} == {"delivered"}
    delivered = {p["entity_id"] for p in receiver.payloads()}
    assert delivered == {first.id, second.id}


def test_bad_input_is_a_clear_4xx_that_changes_nothing(tmp_path: Path) -> None:
    with running_server(fast(tmp_path)) as url:
        api = f"{url}/api/v1"
        requests.post(f"{api}/projects", json={"name": "p"}, timeout=10).raise_for_status()
        events_before = requests.get(f"{api}/audit", timeout=10).json()["items"]
        good = {"url": "http://127.0.0.1:9/x", "events": ["run.finished"], "project": "p"}
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({**good, "url": "ftp://example.com/x"}, 400, "http:// or https://"),
            ({**good, "url": "not a url"}, 400, "whitespace"),
            ({**good, "url": "http://"}, 400, "with a host"),
            ({**good, "url": 7}, 400, "must be a string"),
            ({**good, "events": ["run.started"]}, 400, "unknown webhook event 'run.started'"),
            ({**good, "events": "run.finished"}, 400, "must be a list"),
            ({**good, "events": []}, 400, "at least one event"),
            ({**good, "model": "m"}, 400, "exactly one of project and model (got both)"),
            ({"url": good["url"], "events": good["events"]}, 400, "(got neither)"),
            ({**good, "secret": "short"}, 400, "16 to 256"),
            ({**good, "project": "nope"}, 404, "project 'nope' does not exist"),
            ({**{k: x for k, x in good.items() if k != "project"}, "model": "m"}, 404, "'m'"),
            ({**good, "colour": "red"}, 400, "colour"),
        ]
        for body, status, fragment in cases:
            response = requests.post(f"{api}/webhooks", json=body, timeout=10)
            assert response.status_code == status, (body, response.text)
            error = response.json()["error"]
            assert set(error) >= {"code", "message"}
            assert fragment in error["message"], (body, error)
        for method, path in (
            ("GET", "/webhooks/0123abcd"),
            ("DELETE", "/webhooks/0123abcd"),
            ("GET", "/webhooks/0123abcd/deliveries"),
        ):
            response = requests.request(method, f"{api}{path}", timeout=10)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            assert "webhook '0123abcd' does not exist" in response.json()["error"]["message"]
        created = requests.post(f"{api}/webhooks", json=good, timeout=10)
        assert created.status_code == 201
        hook_id = created.json()["id"]
        response = requests.get(
            f"{api}/webhooks/{hook_id}/deliveries", params={"status": "lost"}, timeout=10
        )
        assert response.status_code == 400
        assert "pending, delivered, failed" in response.json()["error"]["message"]
        requests.delete(f"{api}/webhooks/{hook_id}", timeout=10).raise_for_status()
        assert requests.get(f"{api}/webhooks", timeout=10).json()["items"] == []
        events = requests.get(f"{api}/audit", timeout=10).json()["items"]
    added = [e["action"] for e in events[: len(events) - len(events_before)]]
    assert added == ["webhook.deleted", "webhook.created"]


# -- the service layer, on SQLite and PostgreSQL ----------------------------------------


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Store]:
    store = with_weights(open_store(database_url, blobs=tmp_path / "blobs"))
    store.allow_private_webhooks = True
    try:
        yield store
    finally:
        store.close()


def test_hooks_are_created_listed_and_deleted_with_audit_events(db: Store) -> None:
    run = db.create_run("p", name="r")
    db.register_model_version("m", run_id=run.id, files=FILES)
    db.create_project("q")
    on_p = db.create_webhook("https://ci.example.com/a", ["run.finished"], project="p")
    on_m = db.create_webhook(
        "http://10.0.0.1:8080/b",
        ["alias.moved", "approval.requested", "approval.decided", "alias.moved"],
        model="m",
        secret="x" * 20,
    )
    on_q = db.create_webhook("http://h/c", ["model_version.created"], project="q")
    assert on_m["events"] == ["alias.moved", "approval.requested", "approval.decided"]
    assert on_m["project"] == "p" and on_m["model"] == "m" and on_m["secret"] == "x" * 20
    assert on_p["secret"] != on_q["secret"]
    shown = db.get_webhook(on_p.id)
    assert shown.secret is None and "secret" not in shown.to_dict()
    assert shown == dataclasses.replace(on_p, secret=None)
    assert [h["id"] for h in db.list_webhooks()] == [on_p["id"], on_m["id"], on_q["id"]]
    assert [h["id"] for h in db.list_webhooks(project="p")] == [on_p["id"], on_m["id"]]
    assert [h["id"] for h in db.list_webhooks(model="m")] == [on_m["id"]]
    assert [h["id"] for h in db.list_webhooks(limit=1, offset=1)] == [on_m["id"]]

    db.delete_webhook(on_m["id"])
    with pytest.raises(NotFound, match="does not exist"):
        db.get_webhook(on_m["id"])
    with pytest.raises(NotFound):
        db.delete_webhook(on_m["id"])
    created = db.list_audit(action="webhook.created")
    assert [e["entity_id"] for e in reversed(created)] == [on_p["id"], on_m["id"], on_q["id"]]
    assert all("x" * 20 not in json.dumps(e.to_dict()) for e in db.list_audit())
    [deleted] = db.list_audit(action="webhook.deleted")
    assert deleted["entity_id"] == on_m["id"] and deleted["project"] == "p"
    assert deleted["before"]["url"] == "http://10.0.0.1:8080/b"
    assert db.verify_audit()["ok"]


def test_bad_input_raises_and_changes_nothing(db: Store) -> None:
    db.create_run("p", name="r")
    audit = len(db.list_audit())
    for kwargs, error, fragment in [
        ({"url": "gopher://x/"}, InvalidArgument, "http:// or https://"),
        ({"url": "http://h:99999/"}, InvalidArgument, "not a valid URL"),
        ({"url": "http://h/#frag"}, InvalidArgument, "fragment"),
        ({"events": ["alias.deleted"]}, InvalidArgument, "unknown webhook event"),
        ({"events": None}, InvalidArgument, "must be a list"),
        ({"model": "m"}, InvalidArgument, "got both"),
        ({"project": None}, InvalidArgument, "got neither"),
        ({"secret": "é" * 10}, InvalidArgument, "16 to 256"),
        ({"project": "nope"}, ProjectNotFound, "nope"),
        ({"project": None, "model": "nope"}, ModelNotFound, "nope"),
    ]:
        args: dict[str, Any] = {
            "url": "http://h/x",
            "events": ["run.finished"],
            "project": "p",
            **kwargs,
        }
        with pytest.raises(error, match=fragment):
            db.create_webhook(args.pop("url"), args.pop("events"), **args)
    with pytest.raises(InvalidArgument, match="webhook id"):
        db.get_webhook("../x")
    assert db.list_webhooks() == []
    assert len(db.list_audit()) == audit


def test_dispatch_matches_claims_leases_and_backs_off(db: Store) -> None:
    db.create_project("p")
    early = db.create_run("p")
    db.finish_run(early.id)  # before the hook: never sent to it
    hook = db.create_webhook("http://h/x", ["run.finished"], project="p")
    runs = [db.create_run("p") for _ in range(3)]
    for run in runs:
        db.finish_run(run.id)
    t0 = time.time()
    due = db.dispatch_webhooks(t0, limit=2, lease=30)
    assert [d.payload["entity_id"] for d in due] == [runs[0].id, runs[1].id]
    assert all(d.attempt == 1 and d.url == "http://h/x" for d in due)
    assert due[0].secret == hook["secret"]
    body = due[0].body()
    expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert delivery_headers(due[0])["x-registrum-signature"] == f"sha256={expected}"
    [third] = db.dispatch_webhooks(t0, limit=5, lease=30)  # the first two are leased
    assert third.payload["entity_id"] == runs[2].id
    assert db.dispatch_webhooks(t0 + 29, limit=5, lease=30) == []
    assert len(db.list_deliveries(hook["id"], status="pending")) == 3

    delivered = db.record_delivery(due[0].id, status_code=204, at=t0 + 1)
    assert delivered is not None and delivered["status"] == "delivered"
    retry = db.record_delivery(due[1].id, status_code=502, base_delay=10, max_attempts=3, at=t0)
    assert retry is not None
    assert retry["status"] == "pending" and retry["next_attempt_at"] == t0 + 10
    db.record_delivery(third.id, error="cannot connect", base_delay=10, max_attempts=3, at=t0)
    assert db.dispatch_webhooks(t0 + 9.9, limit=5) == []
    again = db.dispatch_webhooks(t0 + 10, limit=5, lease=30)
    assert sorted(d.attempt for d in again) == [2, 2]
    for d in again:
        db.record_delivery(d.id, status_code=500, base_delay=10, max_attempts=3, at=t0 + 10)
    assert db.dispatch_webhooks(t0 + 29.9, limit=5) == []  # the second retry waits 20 s
    last = db.dispatch_webhooks(t0 + 30, limit=5, lease=30)
    for d in last:
        db.record_delivery(d.id, status_code=500, base_delay=10, max_attempts=3, at=t0 + 30)
    by_status = {
        status: [d["event_id"] for d in db.list_deliveries(hook["id"], status=status)]
        for status in ("pending", "delivered", "failed")
    }
    assert by_status["pending"] == []
    assert len(by_status["delivered"]) == 1 and len(by_status["failed"]) == 2
    failed = db.list_deliveries(hook["id"], status="failed")
    assert all(d["attempts"] == 3 and d["next_attempt_at"] is None for d in failed)
    assert db.record_delivery(failed[0]["id"], status_code=200) is None  # already final
    assert db.dispatch_webhooks(t0 + 10_000, limit=5) == []

    db.delete_webhook(hook["id"])
    assert db.record_delivery(due[0].id, status_code=200) is None


def test_concurrent_dispatchers_claim_each_delivery_once(db: Store) -> None:
    db.create_project("p")
    hook = db.create_webhook("http://h/x", ["run.finished"], project="p")
    db.create_webhook("http://h/y", ["run.finished"], project="p")
    for _ in range(10):
        db.finish_run(db.create_run("p").id)
    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(lambda _: db.dispatch_webhooks(limit=100), range(4)))
    ids = [d.id for batch in claimed for d in batch]
    assert len(ids) == len(set(ids)) == 20
    assert len(db.list_deliveries(hook["id"])) == 10


def test_the_cli_adds_lists_shows_deliveries_and_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    store = open_store(url, blobs=tmp_path / "blobs")
    store.create_project("p")
    store.close()
    add = ["webhooks", "add", "https://ci.example.com/h", "--event", "run.finished"]
    assert main([*add, "--event", "alias.moved", "--project", "p", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "run.finished, alias.moved of project p -> https://ci.example.com/h" in out
    hook_id = out.split()[1].rstrip(":")
    assert "secret (shown this once" in out
    assert main([*add, "--event", "bogus", "--project", "p", "--store", url]) == 1
    assert "unknown webhook event 'bogus'" in capsys.readouterr().err
    assert main(["webhooks", "list", "--store", url]) == 0
    assert hook_id in capsys.readouterr().out

    store = open_store(url, blobs=tmp_path / "blobs")
    store.finish_run(store.create_run("p").id)
    [due] = store.dispatch_webhooks(limit=5)
    store.record_delivery(due.id, status_code=503)
    store.close()
    assert main(["webhooks", "deliveries", hook_id, "--store", url]) == 0
    out = capsys.readouterr().out
    assert "run.finished" in out and "pending" in out and "HTTP 503" in out
    assert main(["webhooks", "remove", hook_id, "--store", url]) == 0
    assert main(["webhooks", "list", "--store", url]) == 0
    assert hook_id not in capsys.readouterr().out.split("\n", 1)[1]
