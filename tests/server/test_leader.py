"""The leader lock (PostgreSQL advisory lock), the jobs it gates, and the webhook claims a new
leader takes over."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from backends import PostgresServer
from polling import wait_for
from registrum.server.jobs import Job, stop_jobs
from registrum.server.leader import Leadership
from registrum.server.webhooks import WebhookWorker
from registrum.store import Store, open_store


@pytest.fixture
def pg_store(postgres: PostgresServer, tmp_path: Path) -> Iterator[Store]:
    with postgres.database(migrated=True) as url:
        store = open_store(url, blobs=tmp_path / "blobs")
        try:
            yield store
        finally:
            store.close()


def test_one_process_leads_and_another_takes_over_when_it_stops(pg_store: Store) -> None:
    first = Leadership(pg_store.engine, retry_every=0.1)
    second = Leadership(pg_store.engine, retry_every=0.1)
    first.start()
    try:
        wait_for(lambda: first.held, "the first to lead", 10)
        second.start()
        time.sleep(0.5)  # several tries of the second meanwhile
        assert first.held and not second.held and second.term() is None
        term = first.term()
        assert term is not None and term <= time.time()
        first.stop()
        assert not first.held
        wait_for(lambda: second.held, "the second to take the lead", 5)
        assert first.changes == 2 and second.changes == 1
    finally:
        first.stop()
        second.stop()


def test_a_leader_whose_session_is_killed_steps_down(pg_store: Store) -> None:
    """The lock goes with the database session: PostgreSQL ending it (as when the holder's
    connection drops) frees the lock, and the holder notices at its next check."""
    leader = Leadership(pg_store.engine, retry_every=0.1)
    other = Leadership(pg_store.engine, retry_every=0.1)
    leader.start()
    try:
        wait_for(lambda: leader.held, "the first to lead", 10)
        other.start()
        admin = create_engine(pg_store.engine.url)
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'registrum leader' AND datname = current_database() "
                    "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
                )
            ).all()
        admin.dispose()
        assert len(ended) == 1
        wait_for(lambda: leader.changes >= 2, "the killed leader to step down", 5)
        wait_for(lambda: leader.held != other.held, "exactly one to lead again", 5)
    finally:
        leader.stop()
        other.stop()


def test_every_process_on_sqlite_leads_from_the_start(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    try:
        leadership = Leadership(store.engine)
        leadership.start()
        assert leadership.held and not leadership.elected
        leadership.stop()
    finally:
        store.close()


def test_leader_only_jobs_skip_their_rounds_while_another_leads() -> None:
    state = {"leads": False}
    done: list[str] = []

    async def run() -> None:
        jobs = [
            Job("cluster work", 0.05, lambda: done.append("cluster")),
            Job("own work", 0.05, lambda: done.append("own"), leader_only=False),
        ]
        for job in jobs:
            job.leads = lambda: state["leads"]
            job.task = asyncio.ensure_future(job._loop())
        await asyncio.sleep(0.3)
        assert "cluster" not in done and "own" in done
        state["leads"] = True
        await asyncio.sleep(1.3)  # a job waiting for the lead looks once a second
        for job in jobs:
            assert job.task is not None
            job.task.cancel()
        await asyncio.gather(*(j.task for j in jobs if j.task), return_exceptions=True)

    asyncio.run(run())
    assert "cluster" in done


def test_stopping_the_jobs_waits_for_a_round_in_flight() -> None:
    """A cancelled round's thread runs on: the server closes its store only after it ended
    (else its database connection is returned to a closed pool and leaks)."""
    started, release = threading.Event(), threading.Event()
    ended: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        ended.append("round")

    async def run() -> None:
        job = Job("slow work", 60, slow, leader_only=False)
        job.task = asyncio.ensure_future(job._loop())
        while not started.is_set():
            await asyncio.sleep(0.01)
        threading.Timer(0.3, release.set).start()
        await stop_jobs([job])
        assert ended == ["round"]  # stop_jobs returned only after the round ended

    asyncio.run(run())


# -- the webhook claims of a previous leader ------------------------------------------------


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    store.allow_private_webhooks = True
    try:
        yield store
    finally:
        store.close()


def test_a_new_leader_takes_over_the_claims_of_the_last_one(db: Store) -> None:
    db.create_project("p")
    hook = db.create_webhook("http://h/x", ["run.finished"], project="p")
    for _ in range(3):
        db.finish_run(db.create_run("p").id)
    t0 = time.time()
    old = db.dispatch_webhooks(t0, limit=2, lease=600)  # claimed, never reported: it died
    assert len(old) == 2
    [mine] = db.dispatch_webhooks(t0 + 5, limit=5, lease=600)  # the new leader's own claim
    assert db.dispatch_webhooks(t0 + 10, limit=5) == []
    assert db.webhook_queue(at=t0 + 10) == {"backlog": 0, "pending": 3, "due": 0, "failed": 0}

    assert db.release_webhook_claims(t0 + 1, at=t0 + 10) == 2
    again = db.dispatch_webhooks(t0 + 10, limit=5, lease=600)
    assert sorted(d.id for d in again) == sorted(d.id for d in old)
    assert all(d.attempt == 2 for d in again)
    assert mine.id not in {d.id for d in again}
    # Nothing left to take: a second call changes nothing.
    assert db.release_webhook_claims(t0 + 1, at=t0 + 11) == 0
    for d in [*again, mine]:
        db.record_delivery(d.id, status_code=204, at=t0 + 12)
    assert db.release_webhook_claims(t0 + 100, at=t0 + 13) == 0
    assert len(db.list_deliveries(hook.id, status="delivered")) == 3


def test_the_webhook_queue_counts_backlog_pending_due_and_failed(db: Store) -> None:
    db.create_project("p")
    assert db.webhook_queue() == {"backlog": 0, "pending": 0, "due": 0, "failed": 0}
    db.create_webhook("http://h/x", ["run.finished"], project="p")
    for _ in range(2):
        db.finish_run(db.create_run("p").id)
    queue = db.webhook_queue()
    assert queue["backlog"] >= 2 and queue["pending"] == 0
    t0 = time.time()
    [first] = db.dispatch_webhooks(t0, limit=1, lease=60)
    assert db.webhook_queue(at=t0) == {"backlog": 0, "pending": 2, "due": 1, "failed": 0}
    db.record_delivery(first.id, status_code=500, max_attempts=1, at=t0)
    assert db.webhook_queue(at=t0) == {"backlog": 0, "pending": 1, "due": 1, "failed": 1}


def test_a_new_leaders_worker_releases_the_old_claims_once_their_sends_must_be_over(
    db: Store,
) -> None:
    db.create_project("p")
    db.create_webhook("http://h/x", ["run.finished"], project="p")
    for _ in range(2):
        db.finish_run(db.create_run("p").id)
    old = db.dispatch_webhooks(limit=5, lease=600)  # the last leader's, never reported
    term = time.time() + 0.01
    follower = WebhookWorker(db, timeout=0.05, term=lambda: None)
    leader = WebhookWorker(db, timeout=0.05, term=lambda: term)
    try:
        assert not follower._leads()
        assert leader._leads()
        assert db.dispatch_webhooks(limit=5) == []  # their sends may still be under way
        wait_for(lambda: time.time() >= term + 2 * 0.05 + 1, "the old sends to be over", 5)
        assert leader._leads()
        again = db.dispatch_webhooks(limit=5, lease=600)
        assert sorted(d.id for d in again) == sorted(d.id for d in old)
    finally:
        follower.stop()
        leader.stop()
