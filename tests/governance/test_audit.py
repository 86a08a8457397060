"""The audit trail: every mutation appends a chained event; tampering is detected."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from registrum.cli import main
from registrum.store import open_store
from registrum.store.audit_chain import acting_as
from registrum.store.service import Store


def mutate(store: Any) -> str:
    """One of most kinds of mutation; returns the run id."""
    run = store.create_run("p", name="r", config={"lr": 0.1}, tags={"team": "a"})
    store.log_params(run.id, {"batch": 32})
    store.log_metrics(run.id, seq=1, keys=["loss"], steps=[0], values=[0.5])
    store.set_tags(run.id, {"stage": "x"})
    store.delete_tag(run.id, "stage")
    data = b"weights"
    sha = store.put_blob(iter([data])).sha256
    files = [{"path": "m.bin", "sha256": sha, "size": len(data)}]
    store.register_model_version("m", run_id=run.id, files=files, aliases=["candidate"])
    store.register_model_version("m", run_id=run.id, files=files)
    store.set_alias("m", "candidate", 2, expected_version=1)
    store.delete_alias("m", "candidate")
    store.finish_run(run.id)
    return str(run.id)


def test_every_mutation_appends_an_event(store: Any) -> None:
    run_id = mutate(store)
    events = list(reversed(store.list_audit()))  # oldest first
    assert [e["action"] for e in events] == [
        "project.created",
        "run.created",
        "run.params_logged",
        "metrics.logged",
        "run.tags_set",
        "run.tag_deleted",
        "blob.stored",
        "model.created",
        "artifact.created",
        "model_version.created",
        "alias.moved",
        "model_version.created",  # the same files: the same artifact, no new one
        "alias.moved",
        "alias.deleted",
        "run.finished",
    ]
    by_action = {e["action"]: e for e in events}
    assert by_action["run.created"]["entity_id"] == run_id
    assert by_action["run.created"]["after"]["params"] == {"lr": 0.1}
    assert by_action["run.finished"]["before"]["status"] == "running"
    assert by_action["run.finished"]["after"]["status"] == "finished"
    moved = [e for e in events if e["action"] == "alias.moved"]
    assert [(e["before"], e["after"]) for e in moved] == [
        (None, {"version": 1}),
        ({"version": 1}, {"version": 2}),
    ]
    assert by_action["alias.deleted"]["before"] == {"version": 2}
    assert all(e["project"] == "p" for e in events if e["entity_type"] != "blob")
    actors = {e["actor"] for e in events}
    assert actors in ({"local"}, {"anonymous@127.0.0.1"})
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    verified = store.verify_audit()
    assert (verified["ok"], verified["events"], verified["problems"]) == (True, len(events), [])
    assert (verified["anchor"]["event"], verified["anchor"]["hash"]) == (
        events[-1]["id"],
        events[-1]["hash"],
    )


def test_events_filter_by_project_action_entity_and_time(store: Any) -> None:
    run_id = mutate(store)
    store.create_run("other")
    assert {e["project"] for e in store.list_audit(project="other")} == {"other"}
    moved = store.list_audit(action="alias.moved")
    assert [e["after"]["version"] for e in moved] == [2, 1]  # newest first
    about_run = store.list_audit(entity_type="run", entity_id=run_id)
    assert about_run and {e["entity_id"] for e in about_run} == {run_id}
    everything = store.list_audit()
    middle = everything[len(everything) // 2]["at"]
    assert all(e["at"] >= middle for e in store.list_audit(since=middle))
    assert all(e["at"] < middle for e in store.list_audit(until=middle))
    assert [e["id"] for e in store.list_audit(limit=3, offset=2)] == [
        e["id"] for e in everything[2:5]
    ]


@pytest.fixture
def direct(database_url: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    yield store
    store.close()


def tamper(store: Store, sql: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql))


def test_an_update_made_in_sql_is_detected(direct: Store) -> None:
    mutate(direct)
    tamper(direct, "UPDATE audit_events SET actor = 'someone-else' WHERE id = 4")
    result = direct.verify_audit()
    assert not result["ok"]
    assert result["problems"] == [{"id": 4, "problem": "its content was altered"}]


def test_an_update_that_rehashes_the_event_is_detected_by_the_next_link(direct: Store) -> None:
    mutate(direct)
    with direct.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET hash = :h WHERE id = 4"), {"h": "f" * 64})
    problems = direct.verify_audit()["problems"]
    assert {"id": 4, "problem": "its content was altered"} in problems
    assert {"id": 5, "problem": "its link to the event before is broken"} in problems


def test_a_delete_made_in_sql_is_detected(direct: Store) -> None:
    mutate(direct)
    tamper(direct, "DELETE FROM audit_events WHERE id = 5")
    assert direct.verify_audit()["problems"][0] == {"id": 5, "problem": "events 5..5 are missing"}


def test_cutting_off_the_newest_events_is_detected(direct: Store) -> None:
    mutate(direct)
    last = direct.list_audit(limit=1)[0]["id"]
    tamper(direct, f"DELETE FROM audit_events WHERE id >= {last - 1}")
    [problem] = direct.verify_audit()["problems"]
    assert problem["problem"] == f"the chain ends at {last - 2}, its head at {last}"


def test_concurrent_writers_keep_one_unbroken_chain(direct: Store) -> None:
    def work(i: int) -> None:
        with acting_as(f"worker-{i}"):
            for j in range(10):
                run = direct.create_run("p", name=f"w{i}-{j}")
                direct.log_metrics(run.id, seq=1, keys=["x"], steps=[0], values=[float(j)])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    result = direct.verify_audit()
    assert result["ok"], result["problems"]
    assert result["events"] == 1 + 4 * 10 * 2
    assert {e["actor"] for e in direct.list_audit(action="run.created")} == {
        f"worker-{i}" for i in range(4)
    }


def test_the_commands_list_and_verify(direct: Store, capsys: pytest.CaptureFixture[str]) -> None:
    mutate(direct)
    where = ["--store", direct.engine.url.render_as_string(hide_password=False)]
    assert main(["audit", "list", "--action", "alias.moved", *where]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "at", "actor", "action", "entity", "project"]
    assert len(lines) == 2 and all(
        "alias.moved" in line and "alias:m@candidate" in line for line in lines
    )
    assert main(["audit", "verify", *where]) == 0
    assert "intact" in capsys.readouterr().out
    tamper(direct, "UPDATE audit_events SET after = NULL WHERE id = 3")
    assert main(["audit", "verify", *where]) == 1
    assert "event 3: its content was altered" in capsys.readouterr().out


def test_the_environment_is_audited_by_its_digest(store: Any) -> None:
    run = store.create_run("p")
    store.set_environment(run.id, {"python": "3.11"})
    [event] = store.list_audit(action="run.environment_set")
    digest = hashlib.sha256(b'{"python":"3.11"}').hexdigest()
    assert event["after"] == {"sha256": digest}
