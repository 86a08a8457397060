"""Webhook targets: by default a hook may reach public addresses only, checked when it is
created and again at every delivery, after resolving, connecting to the very address checked;
`--allow-private-webhooks` lets receivers on your own network through.

Real servers and receivers on loopback. Names under `.test` resolve from a script, swapped in
at the socket boundary (`socket.getaddrinfo`); every other name goes to the system resolver.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from polling import wait_for
from registrum.errors import InvalidArgument
from registrum.server import Settings
from registrum.store import open_store
from registrum.store.service import Store
from serving import running_server, server_process

OPTION = "--allow-private-webhooks"
PUBLIC = "93.184.215.14"  # resolved to, never connected to
ALLOW = {"allow_private_webhooks": True}

# (URL, what the refusal says): every class of non-public address, in every spelling.
REFUSED = [
    ("http://127.0.0.1:8080/h", "127.0.0.1 is a loopback address"),
    ("http://2130706433/h", "2130706433 is 127.0.0.1, a loopback address"),
    ("http://0177.0.0.1/h", "0177.0.0.1 is 127.0.0.1, a loopback address"),
    ("http://0x7f.0.0.1/h", "0x7f.0.0.1 is 127.0.0.1, a loopback address"),
    ("http://127.1/h", "127.1 is 127.0.0.1, a loopback address"),
    ("http://localhost:8080/h", "localhost is this machine, a loopback address"),
    ("http://api.localhost/h", "api.localhost is this machine"),
    ("http://[::1]:8080/h", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/h", "::ffff:127.0.0.1 is a loopback (IPv4-mapped) address"),
    ("http://[::ffff:a9fe:a9fe]/h", "link-local (IPv4-mapped)"),
    ("http://[2002:7f00:1::]/h", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ("http://[64:ff9b::a00:1]/h", "private (IPv4 10.0.0.1 inside IPv6)"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/h", "fe80::1 is a link-local address"),
    ("http://10.1.2.3/h", "10.1.2.3 is a private address"),
    ("http://172.16.0.1/h", "172.16.0.1 is a private address"),
    ("http://192.168.1.1/h", "192.168.1.1 is a private address"),
    ("http://[fd00::1]/h", "fd00::1 is a private address"),
    ("http://100.64.0.1/h", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("http://224.0.0.1/h", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/h", "ff02::1 is a multicast address"),
    ("http://240.0.0.1/h", "240.0.0.1 is a reserved address"),
    ("http://0.0.0.0/h", "0.0.0.0 is a unspecified address"),
    ("http://0/h", "0 is 0.0.0.0, a unspecified address"),
    ("http://[::]/h", ":: is a unspecified address"),
    ("https://internal.test/h", "internal.test resolves to 10.0.0.7, a private address"),
    ("https://metadata.test/h", "metadata.test resolves to 169.254.169.254, a link-local"),
    ("https://both.test/h", "both.test resolves to 127.0.0.1, a loopback address"),
]


# -- name resolution, swapped at the socket boundary ---------------------------------------


class Resolver:
    """`socket.getaddrinfo` for names under `.test`: each name answers its addresses in turn
    (the last one from then on); other names go to the system resolver."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def answer(self, name: str, *turns: list[str]) -> None:
        self.answers[name] = list(turns)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not (isinstance(name, str) and name.endswith(".test")):
            return self.real(host, port, *args, **kwargs)
        with self.lock:
            self.asked.append(name)
            turns = self.answers.get(name)
            addresses = (turns.pop(0) if len(turns) > 1 else turns[0]) if turns else []
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = []
        for address in addresses:
            if ":" in address:
                found.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                found.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return found


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    swapped = Resolver(socket.getaddrinfo)
    swapped.answer("internal.test", ["10.0.0.7"])
    swapped.answer("metadata.test", ["169.254.169.254"])
    swapped.answer("both.test", [PUBLIC, "127.0.0.1"])
    swapped.answer("public.test", [PUBLIC])
    monkeypatch.setattr(socket, "getaddrinfo", swapped)
    return swapped


# -- a receiver --------------------------------------------------------------------------


@dataclass
class Hit:
    host: str | None
    body: bytes


@dataclass
class Receiver:
    """An HTTP(S) server on `address`:`port` that records each POST and answers `status`
    (with `body` and `headers`)."""

    address: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    hits: list[Hit] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.hits.append(Hit(self.headers.get("host"), body))
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((self.address, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)


def settings(tmp_path: Path, **options: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_poll_interval": 0.05,
        "webhook_retry_delay": 0.1,
        "webhook_max_attempts": 2,
        "webhook_timeout": 2.0,
        **options,
    }
    return Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs", **values)


def api_post(url: str, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/api/v1{path}", json=body, timeout=30)


def add_hook(url: str, target: str, **extra: Any) -> requests.Response:
    body = {"url": target, "events": ["run.finished"], "project": "p", **extra}
    return api_post(url, "/webhooks", body)


def finish_a_run(url: str) -> None:
    run = api_post(url, "/runs", {"project": "p"})
    assert run.status_code == 200, run.text
    finished = api_post(url, f"/runs/{run.json()['id']}/status", {"status": "finished"})
    assert finished.status_code == 200, finished.text


def deliveries(url: str, hook_id: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/v1/webhooks/{hook_id}/deliveries", timeout=30)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def settled(url: str, hook_id: str) -> list[dict[str, Any]] | None:
    found = deliveries(url, hook_id)
    return found if found and all(d["status"] != "pending" for d in found) else None


# -- at creation: the service layer on SQLite and PostgreSQL ------------------------------


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    store.create_project("p")
    try:
        yield store
    finally:
        store.close()


def test_the_default_refuses_every_non_public_target_at_creation(
    db: Store, resolver: Resolver
) -> None:
    events = len(db.list_audit())
    for url, says in REFUSED:
        with pytest.raises(InvalidArgument) as refused:
            db.create_webhook(url, ["run.finished"], project="p")
        message = refused.value.message
        assert says in message, (url, message)
        assert OPTION in message, message
        assert refused.value.context == {"url": url}
    assert db.list_webhooks() == []
    assert len(db.list_audit()) == events
    # Public addresses, and names resolving only to them, are fine; so is a name that does
    # not resolve yet (it is checked again at every delivery).
    for url in (f"http://{PUBLIC}/h", "https://public.test/h", "https://nowhere.test/h"):
        db.create_webhook(url, ["run.finished"], project="p")
    assert len(db.list_webhooks()) == 3


def test_allowing_private_targets_lets_every_one_through(db: Store, resolver: Resolver) -> None:
    db.allow_private_webhooks = True
    for url, _ in REFUSED:
        db.create_webhook(url, ["run.finished"], project="p")
    assert [h["url"] for h in db.list_webhooks()] == [url for url, _ in REFUSED]


# -- over HTTP, and at delivery ---------------------------------------------------------


def test_a_refused_target_is_a_400_over_http(tmp_path: Path, resolver: Resolver) -> None:
    with running_server(settings(tmp_path)) as url:
        assert api_post(url, "/projects", {"name": "p"}).status_code == 201
        for target, says in (
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
            ("http://localhost:8765/h", "localhost is this machine"),
            ("https://internal.test/h", "resolves to 10.0.0.7, a private address"),
        ):
            response = add_hook(url, target)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_argument"
            assert says in error["message"] and OPTION in error["message"]
        hooks = requests.get(f"{url}/api/v1/webhooks", timeout=30).json()["items"]
        assert hooks == []


# Addresses a name may turn to after its hook was made, and what the refusal says.
REBOUND = [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback (IPv4-mapped) address"),
    ("10.0.0.7", "a private address"),
    ("fd00::7", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("0.0.0.0", "a unspecified address"),
]


def test_a_name_that_turns_private_after_creation_is_refused_at_delivery(
    tmp_path: Path, resolver: Resolver
) -> None:
    receiver = Receiver()
    with receiver.running(), running_server(settings(tmp_path)) as url:
        api_post(url, "/projects", {"name": "p"})
        hooks = {}
        for i, (address, _) in enumerate(REBOUND):
            # Public when the hook is made; then the receiver's loopback port, or elsewhere.
            name = f"rebind{i}.test"
            resolver.answer(name, [PUBLIC], [address])
            created = add_hook(url, f"http://{name}:{receiver.port}/hook")
            assert created.status_code == 201, created.text
            hooks[created.json()["id"]] = (name, *REBOUND[i])
        finish_a_run(url)
        for hook_id, (name, address, kind) in hooks.items():
            [refused] = wait_for(lambda: settled(url, hook_id))  # noqa: B023
            assert refused["status"] == "failed" and refused["attempts"] == 2
            assert refused["last_status"] is None
            error = refused["last_error"]
            assert error.startswith(f"refused: {name} resolves to {address}, {kind}"), error
            assert OPTION in error
    assert receiver.hits == []


def test_each_delivery_connects_to_the_address_it_checked(
    tmp_path: Path, resolver: Resolver
) -> None:
    # Two receivers on one port: 127.0.0.2 (what the name resolves to first) and 127.0.0.1
    # (what it resolves to on any later look-up). Only the first may be reached.
    checked = Receiver(address="127.0.0.2")
    with checked.running():
        elsewhere = Receiver(address="127.0.0.1", port=checked.port)
        with elsewhere.running(), running_server(settings(tmp_path, **ALLOW)) as url:
            api_post(url, "/projects", {"name": "p"})
            resolver.answer("pinned.test", ["127.0.0.2"], ["127.0.0.1"])
            created = add_hook(url, f"http://pinned.test:{checked.port}/hook")
            assert created.status_code == 201, created.text
            finish_a_run(url)
            [delivered] = wait_for(lambda: settled(url, created.json()["id"]))
    assert delivered["status"] == "delivered" and delivered["last_status"] == 200
    assert [h.host for h in checked.hits] == [f"pinned.test:{checked.port}"]
    assert elsewhere.hits == []
    assert resolver.asked.count("pinned.test") == 1  # resolved once, for the one delivery


def test_localhost_is_refused_by_default_and_reached_with_the_option(tmp_path: Path) -> None:
    receiver = Receiver()
    with receiver.running():
        target = f"http://localhost:{receiver.port}/hook"
        with running_server(settings(tmp_path / "default")) as url:
            api_post(url, "/projects", {"name": "p"})
            assert add_hook(url, target).status_code == 400
        with running_server(settings(tmp_path / "allowed", **ALLOW)) as url:
            api_post(url, "/projects", {"name": "p"})
            created = add_hook(url, target)
            assert created.status_code == 201, created.text
            finish_a_run(url)
            [delivered] = wait_for(lambda: settled(url, created.json()["id"]))
    assert delivered["status"] == "delivered"
    assert [h.host for h in receiver.hits] == [f"localhost:{receiver.port}"]
    assert json.loads(receiver.hits[0].body)["action"] == "run.finished"


def test_redirects_are_not_followed_and_answers_are_not_kept(tmp_path: Path) -> None:
    final = Receiver()
    with final.running():
        banner = b"SSH-2.0-OpenSSH_9.2 internal banner"
        redirecting = Receiver(
            status=302,
            body=banner,
            headers={"location": f"http://127.0.0.1:{final.port}/next"},
        )
        options = {**ALLOW, "webhook_max_attempts": 1}
        with redirecting.running(), running_server(settings(tmp_path, **options)) as url:
            api_post(url, "/projects", {"name": "p"})
            created = add_hook(url, f"http://127.0.0.1:{redirecting.port}/hook")
            finish_a_run(url)
            [failed] = wait_for(lambda: settled(url, created.json()["id"]))
            log = requests.get(f"{url}/api/v1/webhooks/{created.json()['id']}/deliveries")
    assert failed["status"] == "failed" and failed["last_status"] == 302
    assert failed["last_error"] == "the receiver answered HTTP 302"
    assert len(redirecting.hits) == 1 and final.hits == []
    assert b"SSH-2.0" not in log.content and b"banner" not in log.content


# -- https: the certificate and server name are the URL's host, not the address ---------------


def make_certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA (its certificate) and a certificate for `name` signed by it (and its key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ca_args = ("-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=registrum test CA")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *ca_args)
    (folder / "leaf.ext").write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    leaf_args = ("-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={name}")
    openssl("req", "-newkey", "rsa:2048", "-nodes", *leaf_args)
    openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
    )  # fmt: skip
    return folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"


def test_https_checks_the_certificate_of_the_named_host(
    tmp_path: Path, resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    ca, cert, key = make_certificates(folder, "secure.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    receiver = Receiver(tls=tls)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    resolver.answer("secure.test", ["127.0.0.1"])
    resolver.answer("impostor.test", ["127.0.0.1"])
    options = {**ALLOW, "webhook_max_attempts": 1}
    with receiver.running(), running_server(settings(tmp_path, **options)) as url:
        api_post(url, "/projects", {"name": "p"})
        good = add_hook(url, f"https://secure.test:{receiver.port}/hook").json()["id"]
        # The same address under a name the certificate does not cover: refused by TLS.
        bad = add_hook(url, f"https://impostor.test:{receiver.port}/hook").json()["id"]
        finish_a_run(url)
        [delivered] = wait_for(lambda: settled(url, good))
        [failed] = wait_for(lambda: settled(url, bad))
    assert delivered["status"] == "delivered", delivered
    assert failed["status"] == "failed" and failed["last_status"] is None
    assert "hostname 'impostor.test' doesn't match 'secure.test'" in failed["last_error"]
    assert [h.host for h in receiver.hits] == [f"secure.test:{receiver.port}"]
    assert "secure.test" in receiver.server_names and "impostor.test" in receiver.server_names


# -- the server's option ------------------------------------------------------------------


def test_the_server_option_allows_private_targets(tmp_path: Path) -> None:
    target = "http://10.20.30.40:8080/hook"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with server_process(tmp_path / "a") as server:
        url = server.root
        api_post(url, "/projects", {"name": "p"})
        refused = add_hook(url, target)
        assert refused.status_code == 400
        assert "10.20.30.40 is a private address" in refused.json()["error"]["message"]
    with server_process(tmp_path / "b", options=[OPTION]) as server:
        url = server.root
        api_post(url, "/projects", {"name": "p"})
        assert add_hook(url, target).status_code == 201
