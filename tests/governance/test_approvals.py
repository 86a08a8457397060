"""Promotion with approval: protected aliases move only through approved requests, gates block
worse candidates, decisions are audited, and every alias move is kept; on SQLite and
PostgreSQL, and over a real server with access control on."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import registrum
from backends import BACKENDS, backend_params
from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import ApprovalRequired, Conflict, Forbidden, InvalidArgument
from registrum.store.acting import Principal, signed_in_as
from registrum.store.governance.outbox import event_model
from registrum.store.service import Store
from serving import auth_server


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as store:
        yield store


def blob(store: Any, data: bytes) -> list[dict[str, Any]]:
    info = store.put_blob(io.BytesIO(data))
    return [{"path": "w.bin", "sha256": info.sha256, "size": info.size}]


class Team:
    """Project `p` with an admin, an editor, three reviewers and a viewer; model `m` with
    versions 1 to 3 and `champion` on 1."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.users = {
            n: store.create_user(n) for n in ("padmin", "editor", "r1", "r2", "r3", "viewer")
        }
        with self.as_("padmin"):
            store.create_project("p")
            for name in ("r1", "r2", "r3"):
                store.add_member("p", name, "reviewer")
            store.add_member("p", "editor", "editor")
            store.add_member("p", "viewer", "viewer")
        with self.as_("editor"):
            for n in (1, 2, 3):
                store.register_model_version(
                    "m",
                    project="p",
                    files=blob(store, f"weights {n}".encode()),
                    aliases=["champion"] if n == 1 else [],
                )

    def as_(self, name: str) -> Any:
        user = self.users[name]
        return signed_in_as(Principal(user_id=user.id, name=user.name))


def test_two_approvals_move_a_protected_alias_and_history_keeps_every_move(local: Store) -> None:
    team = Team(local)
    with team.as_("editor"), pytest.raises(Forbidden, match="needs admin"):
        local.set_policy("m", protected=["champion"])
    with team.as_("padmin"):
        policy = local.set_policy("m", protected=["champion"], approvals_needed=2)
    assert policy["approver_role"] == "reviewer" and not policy["allow_self_approval"]
    with team.as_("editor"):
        with pytest.raises(ApprovalRequired, match="opened request") as opened:
            local.set_alias("m", "champion", 2)  # does not move: opens a request for the move
        by_move = local.get_request(opened.value.context["request_id"])
        assert (by_move["state"], by_move["version"], by_move["from_version"]) == ("open", 2, 1)
        assert by_move["requested_by"] == "editor"
        assert local.get_model_version("m@champion").version == 1
        local.cancel_request(by_move["id"])
        fourth = local.register_model_version("m", files=blob(local, b"w4"), aliases=["champion"])
        assert fourth.version == 4 and "champion" not in fourth.aliases  # registered, not moved
        [by_registration] = local.list_requests("m", state="open")
        assert (by_registration["version"], by_registration["alias"]) == (4, "champion")
        local.cancel_request(by_registration["id"])
        local.set_alias("m", "staging", 2)  # unprotected: moves directly
        with pytest.raises(InvalidArgument, match="not protected"):
            local.request_promotion("m", "staging", 3)
        request = local.request_promotion("m", "champion", 2, comment="better on test")
        assert (request["state"], request["from_version"], request["approvals"]) == ("open", 1, 0)
    with team.as_("r3"):  # a reviewer who asks may not approve their own request
        own = local.request_promotion("m", "champion", 3)
        with pytest.raises(Forbidden, match="may not approve"):
            local.approve_request(own["id"])
        local.cancel_request(own["id"])
    for name in ("editor", "viewer"):
        with team.as_(name), pytest.raises(Forbidden, match="needs reviewer"):
            local.approve_request(request["id"])
    with team.as_("r1"):
        first = local.approve_request(request["id"], comment="looks good")
        assert (first["state"], first["approvals"]) == ("open", 1)
        assert local.get_model_version("m@champion").version == 1
        with pytest.raises(Conflict, match="already voted"):
            local.approve_request(request["id"])
    with team.as_("r2"):
        done = local.approve_request(request["id"])
    assert (done["state"], done["decided_by"], done["approvals"]) == ("approved", "r2", 2)
    assert [v["voter"] for v in done["votes"]] == ["r1", "r2"]
    assert local.get_model_version("m@champion").version == 2

    moves = [
        (h["alias"], h["from_version"], h["to_version"], h["actor"], h["request_id"])
        for h in local.alias_history("m")
    ]
    assert moves == [
        ("champion", None, 1, "editor", None),
        ("staging", None, 2, "editor", None),
        ("champion", 1, 2, "r2", request["id"]),
    ]
    assert len(local.alias_history("m", "staging")) == 1

    events = [e for e in local.list_audit(project="p") if e["entity_type"] != "membership"]
    actions = [e["action"] for e in events]
    for action in ("policy.updated", "approval.requested", "approval.voted", "approval.decided"):
        assert action in actions
    for e in events:
        if e["action"].startswith(("approval.", "policy.")):
            assert event_model(e["entity_type"], e["entity_id"], e["before"], e["after"]) == "m"
    decided = next(e for e in events if e["action"] == "approval.decided")
    assert decided["actor"] == "r2" and decided["after"]["decision"] == "approved"


def test_rejection_and_cancellation_leave_the_alias(local: Store) -> None:
    team = Team(local)
    with team.as_("padmin"):
        local.set_policy("m", protected=["champion"])
    with team.as_("editor"):
        rejected = local.request_promotion("m", "champion", 2)
        cancelled = local.request_promotion("m", "champion", 3)
        by_admin = local.request_promotion("m", "champion", 3)
    with team.as_("r1"):
        out = local.reject_request(rejected["id"], comment="not yet")
        assert (out["state"], out["decision_comment"]) == ("rejected", "not yet")
        with pytest.raises(Conflict, match="already rejected"):
            local.approve_request(rejected["id"])
        with pytest.raises(Forbidden, match="needs admin"):
            local.cancel_request(cancelled["id"])
    with team.as_("editor"):
        assert local.cancel_request(cancelled["id"])["state"] == "cancelled"
    with team.as_("padmin"):
        assert local.cancel_request(by_admin["id"])["state"] == "cancelled"
    assert local.get_model_version("m@champion").version == 1
    assert [r["state"] for r in local.list_requests("m")] == ["cancelled", "cancelled", "rejected"]
    assert [r["id"] for r in local.list_requests("m", state="rejected")] == [rejected["id"]]
    assert [h["to_version"] for h in local.alias_history("m", "champion")] == [1]


def test_two_concurrent_approvals_move_the_alias_once(local: Store) -> None:
    team = Team(local)
    with team.as_("padmin"):
        local.set_policy("m", protected=["champion"])
    with team.as_("editor"):
        request = local.request_promotion("m", "champion", 3)
    barrier = threading.Barrier(3)
    outcomes: list[str] = []

    def approve(name: str) -> None:
        with team.as_(name):
            barrier.wait()
            try:
                local.approve_request(request["id"])
                outcomes.append("approved")
            except Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=approve, args=(n,)) for n in ("r1", "r2", "r3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["approved", "conflict", "conflict"]
    assert local.get_model_version("m@champion").version == 3
    moves = [h for h in local.alias_history("m", "champion") if h["request_id"]]
    assert len(moves) == 1
    assert len(local.get_request(request["id"])["votes"]) == 1


def test_a_stale_request_does_not_move_an_alias_moved_since(local: Store) -> None:
    team = Team(local)
    with team.as_("padmin"):
        local.set_policy("m", protected=["champion"])
    with team.as_("editor"):
        first = local.request_promotion("m", "champion", 2)
        second = local.request_promotion("m", "champion", 3)
    with team.as_("r1"):
        local.approve_request(first["id"])
        # The move made the other request stale at once: it says what happened.
        stale = local.get_request(second["id"])
        assert stale["state"] == "stale"
        assert (
            "m@champion moved to version 2 after this request opened" in (stale["decision_comment"])
        )
        with pytest.raises(Conflict, match="is stale: m@champion moved to version 2"):
            local.approve_request(second["id"])
    assert local.get_request(second["id"])["state"] == "stale"
    assert local.get_model_version("m@champion").version == 2
    assert [r["id"] for r in local.list_requests("m", state="stale")] == [second["id"]]
    [event] = local.list_audit(action="approval.stale")
    assert event.entity_id == str(second["id"])

    # A direct move (the alias unprotected) and a removal stale open requests too.
    with team.as_("editor"):
        third = local.request_promotion("m", "champion", 3)
    with team.as_("padmin"):
        local.set_policy("m", protected=[])
        local.set_alias("m", "champion", 1)
    assert local.get_request(third["id"])["state"] == "stale"
    with team.as_("padmin"):
        local.set_policy("m", protected=["champion"])
    with team.as_("editor"):
        fourth = local.request_promotion("m", "champion", 3)
    with team.as_("padmin"):
        local.set_policy("m", protected=[])
        local.delete_alias("m", "champion")
    assert (
        "moved to nothing (it was removed)" in local.get_request(fourth["id"])["decision_comment"]
    )


def test_required_tags_gate(local: Store) -> None:
    team = Team(local)
    with team.as_("padmin"):
        local.set_policy("m", protected=["champion"], gates=[{"tags": ["validated"]}])
    with team.as_("editor"):
        request = local.request_promotion("m", "champion", 2)
    [gate] = request["gates"]
    assert not gate["passed"] and "lacks tags validated" in gate["detail"]
    with team.as_("r1"), pytest.raises(Conflict, match="gates fail"):
        local.approve_request(request["id"])
    assert local.get_request(request["id"])["votes"] == []  # the refused approval changed nothing
    with team.as_("editor"):
        local.update_model_version("m@2", tags={"validated": "yes"})
    assert local.get_request(request["id"])["gates"][0]["passed"]  # evaluated live
    with team.as_("r1"):
        done = local.approve_request(request["id"])
    assert done["state"] == "approved" and done["gates"][0]["passed"]  # recorded at decision
    assert local.get_model_version("m@champion").version == 2


def test_an_evaluation_gate_blocks_a_worse_candidate_and_passes_a_better_one(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    weights = tmp_path / "w.bin"
    test_set = np.ones((20, 3))

    def start(name: str, job_type: str) -> registrum.Run:
        return registrum.init(
            project="p", name=name, job_type=job_type, store=database_url, capture_code=False
        )

    for n in (1, 2, 3):
        with start(f"train-{n}", "train") as run:
            weights.write_bytes(f"weights {n}".encode())
            run.register_model("m", path=weights, aliases=["champion"] if n == 1 else [])
    for n, acc in ((1, 0.90), (2, 0.85), (3, 0.95)):
        with start(f"eval-{n}", "evaluation") as run:
            run.use_model(f"m@{n}")
            run.use_dataset(test_set, name="test", role="test")
            run.log({"acc": acc})
    with registrum.Client(database_url) as client:
        [dataset] = client.evaluations("m")["datasets"]
        gate = {"fingerprint": dataset["fingerprint"], "metric": "acc", "direction": "higher"}
        client.set_policy("m", protected=["champion"], allow_self_approval=True, gates=[gate])
        worse = client.request_promotion("m", "champion", 2)
        assert not worse["gates"][0]["passed"]
        assert "0.85 does not beat version 1 0.9" in worse["gates"][0]["detail"]
        with pytest.raises(Conflict, match="gates fail"):
            client.approve(worse["id"])
        assert client.model_version("m@champion").version == 1
        client.reject(worse["id"], comment="worse on test")

        better = client.request_promotion("m", "champion", 3)
        assert better["gates"][0]["passed"]
        assert client.approve(better["id"])["state"] == "approved"
        assert client.model_version("m@champion").version == 3

        # Within a tolerance, a slightly worse candidate passes; the champion is now 3.
        client.set_policy(
            "m",
            protected=["champion"],
            allow_self_approval=True,
            gates=[{**gate, "tolerance": 0.06}],
        )
        assert client.request_promotion("m", "champion", 1)["gates"][0]["passed"]
        assert [h["to_version"] for h in client.alias_history("m", "champion")] == [1, 3]


# -- over a real server with access control on -------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    users = ("padmin", "editor", "reviewer", "viewer")
    with auth_server(tmp_path, users, webhook_senders=0) as (url, _, tokens):
        tokens["server"] = tokens.pop("admin")
        with closing(HttpStore(url, token=tokens["padmin"])) as padmin:
            padmin.create_project("p")
            for name in ("editor", "reviewer", "viewer"):
                padmin.add_member("p", name, name)
        yield url, tokens


def test_roles_over_http_and_the_cli(
    server: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, tokens = server
    stores = {n: HttpStore(url, token=k) for n, k in tokens.items()}
    try:
        editor = stores["editor"]
        editor.register_model_version(
            "m", project="p", files=blob(editor, b"w1"), aliases=["champion"]
        )
        editor.register_model_version("m", files=blob(editor, b"w2"))
        hook = stores["padmin"].create_webhook(
            "https://hooks.test/hook", ["approval.requested", "approval.decided"], model="m"
        )
        assert hook["model"] == "m"
        with pytest.raises(Forbidden):
            editor.set_policy("m", protected=["champion"])
        stores["padmin"].set_policy("m", protected=["champion"], gates=[{"tags": ["qa"]}])
        assert stores["viewer"].get_policy("m")["protected"] == ["champion"]
        with pytest.raises(ApprovalRequired, match="opened request") as opened:
            editor.set_alias("m", "champion", 2)
        editor.cancel_request(opened.value.context["request_id"])
        with pytest.raises(Forbidden):
            stores["viewer"].request_promotion("m", "champion", 2)
        request = editor.request_promotion("m", "champion", 2, comment="ship it")
        for name in ("viewer", "editor"):
            with pytest.raises(Forbidden):
                stores[name].approve_request(request["id"])
        with pytest.raises(Conflict, match="gates fail"):
            stores["reviewer"].approve_request(request["id"])
        editor.update_model_version("m@2", tags={"qa": "passed"})

        monkeypatch.setenv("REGISTRUM_TOKEN", tokens["editor"])
        assert (
            main(["requests", "open", "m", "champion", "2", "--comment", "cli", "--store", url])
            == 0
        )
        from_cli = editor.list_requests("m", state="open")[0]
        assert (
            from_cli["comment"] == "cli" and f"request {from_cli['id']}" in capsys.readouterr().out
        )
        assert main(["requests", "cancel", str(from_cli["id"]), "--store", url]) == 0
        capsys.readouterr()

        monkeypatch.setenv("REGISTRUM_TOKEN", tokens["reviewer"])
        assert main(["requests", "list", "m", "--store", url]) == 0
        assert "open" in capsys.readouterr().out
        assert main(["requests", "approve", str(request["id"]), "--store", url]) == 0
        assert "approved" in capsys.readouterr().out
        assert main(["models", "aliases-history", "m", "--store", url]) == 0
        out = capsys.readouterr().out
        assert "reviewer" in out and str(request["id"]) in out
        assert main(["policy", "show", "m", "--store", url]) == 0
        assert "protected aliases champion" in capsys.readouterr().out

        assert stores["viewer"].get_model_version("m@champion").version == 2
        assert stores["viewer"].get_request(request["id"])["state"] == "approved"
        events = stores["padmin"].list_audit(project="p")
        decided = [e for e in events if e["action"] == "approval.decided"]
        assert [(e["actor"], e["after"]["decision"]) for e in decided] == [
            ("reviewer", "approved"),
            ("editor", "cancelled"),  # the request opened with the CLI
            ("editor", "cancelled"),  # the request the direct move opened
        ]
        assert {e["after"]["model"] for e in decided} == {"m"}
    finally:
        for store in stores.values():
            store.close()
