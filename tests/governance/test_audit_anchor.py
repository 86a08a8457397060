"""The audit chain's head, signed with a key outside the database: a rewrite of the events that
recomputes every hash still breaks each anchor signed before it."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text
from test_audit import mutate

from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import Forbidden, InvalidArgument, StoreError
from registrum.server import Settings
from registrum.store import open_store
from registrum.store.audit_chain import GENESIS, content, event_hash
from registrum.store.governance.anchors import Seal
from registrum.store.service import Store
from serving import ADMIN_TOKEN, running_server


@pytest.fixture
def audit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "audit"
    monkeypatch.setenv("REGISTRUM_AUDIT_DIR", str(folder))
    monkeypatch.delenv("REGISTRUM_AUDIT_KEY", raising=False)
    return folder


@pytest.fixture
def direct(database_url: str, tmp_path: Path, audit_dir: Path) -> Iterator[Store]:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    yield store
    store.close()


def rewrite(url: str, event: int, actor: str) -> None:
    """What an attacker with write access to the database does: change one event, then
    recompute the hash of it and of every later event, and move the head."""
    store = open_store(url)  # its own engine, as another process would have
    try:
        with store.engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_events SET actor = :a WHERE id = :i"), {"a": actor, "i": event}
            )
            prev = (
                conn.execute(
                    text("SELECT hash FROM audit_events WHERE id = :i"), {"i": event - 1}
                ).scalar()
                or GENESIS
            )
            rows = conn.execute(
                text("SELECT * FROM audit_events WHERE id >= :i ORDER BY id"), {"i": event}
            ).all()
            for row in rows:
                digest = event_hash(prev, content(row))
                conn.execute(
                    text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :i"),
                    {"p": prev, "h": digest, "i": row.id},
                )
                prev = digest
            conn.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})
    finally:
        store.close()


def cut(url: str, keep: int) -> None:
    """Deletes the events after `keep` and moves the head back: the chain stays whole."""
    store = open_store(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events WHERE id > :k"), {"k": keep})
            last = conn.execute(text("SELECT hash FROM audit_events WHERE id = :k"), {"k": keep})
            conn.execute(
                text("UPDATE audit_head SET last_id = :k, last_hash = :h WHERE id = 1"),
                {"k": keep, "h": last.scalar_one()},
            )
    finally:
        store.close()


def url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def chain_problems(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in result["problems"] if "anchor" not in p]


def test_a_recomputed_rewrite_passes_the_chain_but_breaks_an_earlier_anchor(
    direct: Store, audit_dir: Path
) -> None:
    mutate(direct)
    anchor = direct.audit_anchor()
    assert anchor["event"] == direct.list_audit(limit=1)[0]["id"]
    rewrite(url_of(direct), 4, "someone-else")

    # The chain alone checks out: every hash was recomputed.
    result = direct.verify_audit()
    assert chain_problems(result) == []
    # The anchor recorded beside the key catches it, without being asked to.
    [recorded] = result["problems"]
    assert not result["ok"] and result["anchor"] is None
    assert recorded["anchor"].endswith(".jsonl:1") and recorded["id"] == anchor["event"]
    assert "were rewritten" in recorded["problem"]

    # Without the recorded anchors (deleted too), an anchor kept off-site still catches it.
    for kept in (audit_dir / "audit-anchors").iterdir():
        kept.unlink()
    fresh = Store(direct.engine, direct.blobs)
    assert fresh.verify_audit()["ok"]
    against = fresh.verify_audit([{**anchor, "source": "offsite.json"}])
    assert not against["ok"]
    [problem] = against["problems"]
    assert problem["anchor"] == "offsite.json"
    assert problem["id"] == anchor["event"]
    assert problem["problem"].startswith(f"anchor offsite.json (event {anchor['event']}, signed ")
    assert f"events up to {anchor['event']} were rewritten" in problem["problem"]


def test_a_chain_that_grew_past_its_anchors_passes(direct: Store) -> None:
    mutate(direct)
    first = direct.audit_anchor()
    direct.create_run("p", name="later")
    second = direct.audit_anchor()
    direct.create_run("p", name="later still")
    assert second["event"] > first["event"]
    result = direct.verify_audit([first, second])
    assert result["ok"], result["problems"]
    assert result["anchors"] == 4  # two given, the same two recorded
    # Every verification that passes signs and records the head it checked.
    assert result["anchor"]["event"] == second["event"] + 1
    assert direct.audit_seal().last() == result["anchor"]


def test_an_anchor_from_an_empty_chain_always_holds(direct: Store) -> None:
    genesis = direct.audit_anchor()
    assert (genesis["event"], genesis["hash"]) == (0, GENESIS)
    mutate(direct)
    assert direct.verify_audit([genesis])["ok"]


def test_deleting_the_newest_events_after_an_anchor_is_detected(direct: Store) -> None:
    mutate(direct)
    anchor = direct.audit_anchor()
    cut(url_of(direct), anchor["event"] - 2)
    result = direct.verify_audit([anchor])
    assert chain_problems(result) == []
    messages = [p["problem"] for p in result["problems"]]
    assert len(messages) == 2  # the given anchor and the recorded one
    assert all("the newest events were deleted" in m for m in messages)
    assert f"the chain ends at event {anchor['event'] - 2}" in messages[0]


def test_a_forged_or_foreign_anchor_is_reported(direct: Store, tmp_path: Path) -> None:
    mutate(direct)
    anchor = direct.audit_anchor()
    forged = {**anchor, "event": 3, "hash": direct.list_audit()[-3]["hash"], "source": "forged"}
    foreign = Seal(tmp_path / "elsewhere", "x").sign(anchor["event"], anchor["hash"], time.time())
    result = direct.verify_audit([forged, foreign])
    by_source = {p["anchor"]: p["problem"] for p in result["problems"]}
    assert set(by_source) == {"forged", "anchors[1]"}
    assert "does not match its content" in by_source["forged"]
    assert f"this store's key is {anchor['key']}" in by_source["anchors[1]"]
    assert "signed with another key" in by_source["anchors[1]"]
    assert not result["ok"]


@pytest.mark.parametrize(
    ("anchors", "message"),
    [
        ("not a list", "anchors must be a list"),
        ([{"event": 1}], "anchors[0] is not a signed audit anchor: it lacks hash, time"),
        ([["x"]], "anchors[0] must be a signed anchor object"),
        (
            [{"event": -1, "hash": "0" * 64, "time": "t", "key": "0" * 16, "signature": "0" * 64}],
            "event must be an event id",
        ),
        (
            [{"event": 1, "hash": "XYZ", "time": "t", "key": "0" * 16, "signature": "0" * 64}],
            "hash 'XYZ' is not lowercase hex",
        ),
    ],
)
def test_malformed_anchors_are_refused(direct: Store, anchors: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        direct.verify_audit(anchors)


def test_the_key_file_is_made_once_readable_by_its_owner_only(
    direct: Store, audit_dir: Path
) -> None:
    assert not audit_dir.exists()  # nothing is made before it is needed
    mutate(direct)
    anchor = direct.audit_anchor()
    key = audit_dir / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit_dir.stat().st_mode) == 0o700
    [anchors] = (audit_dir / "audit-anchors").iterdir()
    assert stat.S_IMODE(anchors.stat().st_mode) == 0o600
    assert json.loads(anchors.read_text().splitlines()[-1]) == anchor
    secret = key.read_text().strip()
    assert len(secret) == 64 and secret not in json.dumps(anchor)
    # Another store on the same folder uses the same key: its anchors verify here.
    other = Store(direct.engine, direct.blobs)
    assert other.verify_audit([anchor])["ok"]
    assert key.read_text().strip() == secret


def test_a_key_file_others_can_read_is_refused(direct: Store, audit_dir: Path) -> None:
    audit_dir.mkdir()
    key = audit_dir / "audit.key"
    key.write_text("k" * 64)
    os.chmod(key, 0o644)
    with pytest.raises(StoreError, match=f"chmod 600 {key}"):
        direct.audit_anchor()


def test_the_key_can_come_from_the_environment(
    direct: Store, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_AUDIT_KEY", "short")
    with pytest.raises(InvalidArgument, match="REGISTRUM_AUDIT_KEY is 5 characters long"):
        direct.audit_anchor()
    monkeypatch.setenv("REGISTRUM_AUDIT_KEY", "s" * 40)
    mutate(direct)
    anchor = Store(direct.engine, direct.blobs).audit_anchor()
    assert not (audit_dir / "audit.key").exists()
    monkeypatch.setenv("REGISTRUM_AUDIT_KEY", "t" * 40)
    result = Store(direct.engine, direct.blobs).verify_audit([anchor])
    assert "signed with another key" in result["problems"][0]["problem"]


def test_the_commands_print_an_anchor_and_verify_against_files(
    direct: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mutate(direct)
    where = ["--store", url_of(direct)]
    assert main(["audit", "anchor", *where]) == 0
    saved = tmp_path / "head.json"
    saved.write_text(capsys.readouterr().out)
    anchor = json.loads(saved.read_text())
    assert set(anchor) == {"event", "hash", "time", "key", "signature"}
    direct.create_run("p", name="more")
    assert main(["audit", "verify", "--anchor", str(saved), *where]) == 0
    assert "the chain extends all 2 anchor(s) checked" in capsys.readouterr().out

    rewrite(url_of(direct), 2, "mallory")
    recorded = next((direct.audit_seal().path.parent).iterdir())
    lines = tmp_path / "copy.jsonl"
    lines.write_text(recorded.read_text())
    assert main(["audit", "verify", "--anchor", str(saved), "--anchor", str(lines), *where]) == 1
    out = capsys.readouterr().out
    assert f"anchor {saved} (event {anchor['event']}, signed {anchor['time']})" in out
    assert f"anchor {lines}:1 " in out and f"anchor {lines}:2 " in out

    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert main(["audit", "verify", "--anchor", str(bad), *where]) != 0
    assert "holds no anchor" in capsys.readouterr().err


# -- over a real server ------------------------------------------------------------------------


@pytest.fixture
def served(database_url: str, tmp_path: Path, audit_dir: Path) -> Iterator[tuple[str, str]]:
    settings = Settings(
        store_url=database_url,
        blobs=tmp_path / "blobs",
        auth=True,
        admin_token=ADMIN_TOKEN,
        webhook_senders=0,
        audit_anchor_interval=0.1,
    )
    with running_server(settings) as url:
        yield url, database_url


def test_over_http_anchors_are_signed_periodically_and_checked(
    served: tuple[str, str], audit_dir: Path
) -> None:
    url, database = served
    assert stat.S_IMODE((audit_dir / "audit.key").stat().st_mode) == 0o600  # made at start
    with closing(HttpStore(url, token=ADMIN_TOKEN)) as admin:
        admin.create_user("viewer")
        token = admin.create_token(user="viewer").token
        assert token is not None
        mutate(admin)
        head = admin.list_audit(limit=1)[0]
        anchor = admin.audit_anchor()
        assert (anchor["event"], anchor["hash"]) == (head["id"], head["hash"])

        # The server signs the head it reached by itself, every audit_anchor_interval.
        admin.create_run("p", name="after the anchor")
        newest = admin.list_audit(limit=1)[0]
        deadline = time.monotonic() + 20
        while True:
            recorded = [
                json.loads(line)
                for path in (audit_dir / "audit-anchors").iterdir()
                for line in path.read_text().splitlines()
            ]
            if any(r["event"] == newest["id"] for r in recorded):
                break
            assert time.monotonic() < deadline, f"no anchor of event {newest['id']}: {recorded}"
            time.sleep(0.05)

        assert admin.verify_audit([anchor])["ok"]
        rewrite(database, 3, "mallory")
        result = admin.verify_audit([{**anchor, "source": "kept-offsite"}])
        assert not result["ok"]
        assert {p["anchor"] for p in result["problems"]} >= {"kept-offsite"}
        assert "kept-offsite" in {p["anchor"] for p in result["problems"]}

        with pytest.raises(InvalidArgument, match="lacks"):
            admin.verify_audit([{"event": 1}])
        with closing(HttpStore(url, token=token)) as viewer:
            with pytest.raises(Forbidden, match="needs a server admin"):
                viewer.audit_anchor()
            with pytest.raises(Forbidden, match="needs a server admin"):
                viewer.verify_audit([anchor])

    answer = requests.post(
        f"{url}/api/v1/audit/verify",
        json={"anchors": [{"event": "x"}]},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_argument"


def test_a_damaged_anchors_file_is_reported_and_a_cut_last_line_skipped(direct: Store) -> None:
    mutate(direct)
    direct.audit_anchor()
    path = direct.audit_seal().path
    with path.open("a") as out:
        out.write("garbage\n")
        out.write('{"event": 1, "hash"')  # a write cut short by a crash: no newline
    result = Store(direct.engine, direct.blobs).verify_audit()
    [problem] = result["problems"]
    assert problem["anchor"] == f"{path}:2"
    assert problem["problem"].startswith(f"anchor {path}:2 is not a signed anchor")
    assert result["anchors"] == 1


def test_an_anchor_recorded_after_a_cut_line_is_kept_whole(direct: Store) -> None:
    mutate(direct)
    direct.audit_anchor()
    path = direct.audit_seal().path
    with path.open("a") as out:
        out.write('{"event": 1, "hash"')
    direct.create_run("p", name="later")
    newest = Store(direct.engine, direct.blobs).audit_anchor()
    assert json.loads(path.read_text().splitlines()[-1]) == newest
    result = Store(direct.engine, direct.blobs).verify_audit()
    assert [p["anchor"] for p in result["problems"]] == [f"{path}:2"]  # the cut line only
    assert result["anchors"] == 2
