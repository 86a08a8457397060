"""Two `registrum server` replicas on one PostgreSQL database and one blob folder, behind a
round-robin TCP proxy: trainers, registrations, alias moves and webhooks go through the
proxy while the leading replica is SIGKILLed, and everything arrives exactly once."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from backends import PostgresServer
from polling import wait_for
from serving import free_port
from tcp_proxy import round_robin

AFTER = 600  # steps each trainer logs once the replica is killed
TRAINERS = 3
REGISTRATIONS = 12

# Logs until the test has killed a replica (the file `killed` appears), then AFTER steps
# more, so that points are on their way at the kill; prints the run and how many steps.
TRAINER = """
import sys, time
from pathlib import Path
import registrum
url, name, killed, after = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
run = registrum.init(project="p", name=name, store=url, config={"trainer": name})
step, last = 0, None
while last is None or step < last:
    run.log({"loss": 1.0 / (step + 1), "acc": step / 1000}, step=step)
    step += 1
    if last is None and killed.exists():
        last = step + after
    time.sleep(0.002)
run.finish()
print(run.id, step)
"""


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leads(self) -> bool:
        with requests.get(f"{self.root}/api/v1/metrics", timeout=5) as r:
            r.raise_for_status()
            return "\nregistrum_leader 1\n" in r.text


@contextmanager
def replicas(database: str, blobs: Path, count: int = 2) -> Iterator[list[Replica]]:
    """`count` server processes on `database` and `blobs`, each healthy."""
    started: list[Replica] = []
    try:
        for _ in range(count):
            port = free_port()
            cmd = [sys.executable, "-m", "registrum.cli", "server", "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--store", database, "--blobs", str(blobs)]
            cmd += ["--log-level", "warning", "--allow-private-webhooks"]
            cmd += ["--webhook-timeout", "2", "--webhook-retry-delay", "0.5"]
            started.append(Replica(port, subprocess.Popen(cmd)))
        for replica in started:
            wait_for(lambda r=replica: _healthy(r), "a replica to answer its health check", 60)
        yield started
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.proc.terminate()
        for replica in started:
            try:
                replica.proc.wait(15)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()


def _healthy(replica: Replica) -> bool:
    assert replica.proc.poll() is None, f"a replica exited with {replica.proc.returncode}"
    try:
        with requests.get(f"{replica.root}/api/v1/health", timeout=1) as r:
            return r.status_code == 200
    except requests.ConnectionError:
        return False


def the_leader(cluster: list[Replica]) -> Replica:
    """The one live replica that leads; fails while none or several do."""
    leading = [r for r in cluster if r.proc.poll() is None and r.leads()]
    assert len(leading) <= 1, "two replicas lead at once"
    return leading[0] if leading else None  # type: ignore[return-value]


class Receiver:
    """A webhook receiver on loopback that records every delivery it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    received.append(
                        {"delivery": self.headers["x-registrum-delivery"], **json.loads(body)}
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster_store(postgres: PostgresServer, tmp_path: Path) -> Iterator[str]:
    with postgres.database(migrated=True) as url:
        yield url


def _trainer(url: str, name: str, home: Path, killed: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REGISTRUM_HOME": str(home),
        "REGISTRUM_STRICT": "1",
        "REGISTRUM_FLUSH_TIMEOUT": "60",
    }
    env.pop("REGISTRUM_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", TRAINER, url, name, str(killed), str(AFTER)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _register_and_move(
    url: str, run_id: str, made: list[int], moved: list[int], killed: threading.Event
) -> None:
    """Registers REGISTRATIONS versions of model m, moving `champion` onto each, a third of
    them before the kill; every call is a keyed write the client retries while a replica
    dies under it."""
    from registrum.client.http import HttpStore

    with closing(HttpStore(url)) as client:
        for i in range(REGISTRATIONS):
            content = f"weights {i}".encode()
            sha = hashlib.sha256(content).hexdigest()
            blob = client.put_blob(io.BytesIO(content), sha256=sha)
            files = [{"path": "model.bin", "sha256": blob.sha256, "size": blob.size}]
            version = client.register_model_version("m", project="p", run_id=run_id, files=files)
            made.append(version.version)
            moved.append(client.set_alias("m", "champion", version.version).version)
            if len(made) == REGISTRATIONS // 3:
                killed.wait(60)


def _logging(client: Any) -> int:
    """How many runs have stored metric points."""
    return len({e.entity_id for e in client.list_audit(project="p", action="metrics.logged")})


def test_replicas_lose_nothing_and_do_nothing_twice_when_one_is_killed(
    cluster_store: str, tmp_path: Path
) -> None:
    from registrum.client.http import HttpStore

    receiver = Receiver()
    with ExitStack() as stack:
        stack.callback(receiver.close)
        cluster = stack.enter_context(replicas(cluster_store, tmp_path / "blobs"))
        proxy = stack.enter_context(round_robin([("127.0.0.1", r.port) for r in cluster]))
        leader = wait_for(lambda: the_leader(cluster), "a replica to lead", 15)
        client = stack.enter_context(closing(HttpStore(proxy.url)))
        client.create_project("p")
        hook = client.create_webhook(
            receiver.url, ["model_version.created", "alias.moved", "run.finished"], project="p"
        )
        registrar = client.create_run("p", name="registrar")

        flag, killed = tmp_path / "killed", threading.Event()
        trainers = [
            _trainer(proxy.url, f"t{i}", tmp_path / f"trainer{i}", flag) for i in range(TRAINERS)
        ]
        made: list[int] = []
        moved: list[int] = []
        registering = threading.Thread(
            target=_register_and_move, args=(proxy.url, registrar.id, made, moved, killed)
        )
        registering.start()
        # Mid-run: once some versions exist and every trainer has stored points.
        wait_for(lambda: len(moved) >= REGISTRATIONS // 3, "the first registrations", 30)
        wait_for(lambda: _logging(client) == TRAINERS, "every trainer to log", 30)
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait()
        flag.touch()
        killed.set()
        survivor = next(r for r in cluster if r is not leader)

        registering.join(60)
        assert not registering.is_alive()
        run_ids = []
        for trainer in trainers:
            out, _ = trainer.communicate(timeout=60)
            assert trainer.returncode == 0, "a trainer failed"
            run_id, steps = out.strip().splitlines()[-1].split()
            run_ids.append((run_id, int(steps)))
        client.finish_run(registrar.id, "finished")
        assert wait_for(survivor.leads, "the surviving replica to lead", 15)

        # Every point once.
        for run_id, steps in run_ids:
            assert steps > AFTER
            for key in ("loss", "acc"):
                history = client.metric_history(run_id, key)
                assert history.total == steps
                assert sorted(history.steps.tolist()) == list(range(steps))
        # Every version and alias move once, numbered without a gap.
        assert made == list(range(1, REGISTRATIONS + 1))
        assert moved == made
        versions = client.list_model_versions("m")
        assert sorted(v.version for v in versions) == made
        moves = client.alias_history("m", alias="champion")
        assert len(moves) == REGISTRATIONS

        # Every audit event once: one per registration, alias move and run; one per batch.
        events = client.list_audit(project="p")
        actions = Counter(e.action for e in events)
        assert actions["model_version.created"] == REGISTRATIONS
        assert actions["alias.moved"] == REGISTRATIONS
        assert actions["run.created"] == TRAINERS + 1
        assert actions["run.finished"] == TRAINERS + 1
        batches = [(e.entity_id, e.after["seq"]) for e in events if e.action == "metrics.logged"]
        assert len(batches) == len(set(batches))
        assert client.verify_audit()["ok"]

        # Every webhook once: one delivery per matching event, none sent twice.
        wanted = {
            e.id
            for e in events
            if e.action in ("model_version.created", "alias.moved", "run.finished")
        }
        wait_for(
            lambda: {d["event_id"] for d in receiver.received} >= wanted,
            "every webhook delivery",
            30,
        )
        time.sleep(1.0)  # a second delivery of anything would arrive now
        got = Counter(d["event_id"] for d in receiver.received)
        assert set(got) == wanted
        assert max(got.values()) == 1, "a webhook was delivered twice"
        assert len({d["delivery"] for d in receiver.received}) == len(receiver.received)
        assert all(d["webhook_id"] == hook.id for d in receiver.received)
        # Both replicas served: the proxy spread connections over them before the kill.
        assert min(proxy.connections) > 0


def test_the_leader_role_moves_when_the_leader_is_killed(
    cluster_store: str, tmp_path: Path
) -> None:
    with replicas(cluster_store, tmp_path / "blobs", count=3) as cluster:
        first = wait_for(lambda: the_leader(cluster), "a replica to lead", 15)
        time.sleep(1.5)  # the others have tried, and failed, to take the lead meanwhile
        assert the_leader(cluster) is first
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        killed = time.monotonic()
        second = wait_for(lambda: the_leader(cluster), "another replica to lead", 15)
        taken = time.monotonic() - killed
        assert second is not first
        assert taken < 5, f"the lead moved only after {taken:.1f} s"
        # A replica stopped cleanly hands the lead over too.
        second.proc.terminate()
        second.proc.wait(15)
        third = wait_for(lambda: the_leader(cluster), "the last replica to lead", 15)
        assert third not in (first, second)
