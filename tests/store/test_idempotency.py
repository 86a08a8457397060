"""Idempotency keys in the service layer: a write retried with its key is made once and answers
as the first time; the same key with another request, a bad key, another user's key and an
expired key each behave as documented; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from backends import BACKENDS, backend_params
from registrum.errors import (
    AliasMoved,
    ApprovalRequired,
    Conflict,
    IdempotencyKeyReused,
    InvalidArgument,
    Unauthorized,
)
from registrum.store import schema as t
from registrum.store.acting import Principal, signed_in_as
from registrum.store.idempotency import KEY_TTL
from registrum.store.service import Store


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as store:
        yield store


def files(store: Store, data: bytes) -> list[dict[str, Any]]:
    info = store.put_blob(io.BytesIO(data))
    return [{"path": "w.bin", "sha256": info.sha256, "size": info.size}]


def count(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def as_user(store: Store, name: str) -> Any:
    user = store.create_user(name)
    return Principal(user_id=user.id, name=user.name)


def test_a_retried_registration_makes_one_version_and_answers_alike(local: Store) -> None:
    weights = files(local, b"weights")
    first = local.register_model_version(
        "m", project="p", files=weights, metrics={"acc": 0.9}, idempotency_key="k-1"
    )
    again = local.register_model_version(
        "m", project="p", files=weights, metrics={"acc": 0.9}, idempotency_key="k-1"
    )
    assert again == first and again.version == 1
    assert [v.version for v in local.list_model_versions("m")] == [1]
    # A new key is a new write; no key is never deduplicated.
    assert local.register_model_version("m", files=weights, idempotency_key="k-2").version == 2
    assert local.register_model_version("m", files=weights).version == 3
    assert local.register_model_version("m", files=weights).version == 4


def test_the_same_key_with_another_request_is_refused_and_changes_nothing(local: Store) -> None:
    weights = files(local, b"weights")
    local.register_model_version("m", project="p", files=weights, idempotency_key="k")
    audit = count(local, t.audit_events)
    with pytest.raises(IdempotencyKeyReused, match="different request") as refused:
        local.register_model_version(
            "m", project="p", files=weights, description="other", idempotency_key="k"
        )
    assert refused.value.status == 409 and refused.value.code == "idempotency_key_reused"
    with pytest.raises(IdempotencyKeyReused, match=r"model_version\.register"):
        local.set_alias("m", "champion", 1, idempotency_key="k")  # another operation
    assert [v.version for v in local.list_model_versions("m")] == [1]
    assert count(local, t.audit_events) == audit


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "0 characters"),
        ("x" * 256, "256 characters"),
        ("caf\u00e9", "'\u00e9'"),
        ("tab\there", "'\\t'"),
        ("\ud800", "'\\ud800'"),
        (42, "must be a string"),
    ],
)
def test_a_bad_key_is_a_clear_invalid_argument(local: Store, key: Any, says: str) -> None:
    with pytest.raises(InvalidArgument, match="idempotency key") as refused:
        local.register_model_version(
            "m", project="p", files=files(local, b"w"), idempotency_key=key
        )
    assert says in refused.value.message
    assert local.list_models() == []
    assert count(local, t.idempotency_keys) == 0


def test_a_quoted_key_is_the_same_key(local: Store) -> None:
    weights = files(local, b"w")
    first = local.register_model_version("m", project="p", files=weights, idempotency_key="abc")
    again = local.register_model_version("m", project="p", files=weights, idempotency_key='"abc"')
    assert again == first


def test_keys_belong_to_their_user(local: Store) -> None:
    alice, bob = as_user(local, "alice"), as_user(local, "bob")
    with signed_in_as(alice):
        local.create_project("p")
    local.add_member("p", "bob", "editor")
    with signed_in_as(alice):
        weights = files(local, b"w")
        mine = local.register_model_version("m", project="p", files=weights, idempotency_key="k")
    with signed_in_as(bob):
        theirs = local.register_model_version("m", project="p", files=weights, idempotency_key="k")
        again = local.register_model_version("m", project="p", files=weights, idempotency_key="k")
        assert again == theirs
    assert (mine.version, theirs.version) == (1, 2)


def test_concurrent_writes_with_one_key_make_one_version(local: Store) -> None:
    weights = files(local, b"w")
    local.register_model_version("m", project="p", files=weights)
    start, answers, errors = threading.Barrier(6), [], []

    def register() -> None:
        start.wait()
        try:
            answers.append(local.register_model_version("m", files=weights, idempotency_key="k"))
        except Exception as exc:  # reported below, with the answers
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {a.version for a in answers} == {2} and len(answers) == 6
    assert [v.version for v in local.list_model_versions("m")] == [2, 1]


def test_a_retried_compare_and_set_does_not_lose_to_its_own_move(local: Store) -> None:
    weights = files(local, b"w")
    for _ in range(2):
        local.register_model_version("m", project="p", files=weights)
    local.set_alias("m", "champion", 1)
    moved = local.set_alias("m", "champion", 2, expected_version=1, idempotency_key="move")
    again = local.set_alias("m", "champion", 2, expected_version=1, idempotency_key="move")
    assert again == moved
    with pytest.raises(AliasMoved):  # without the key, the same move is a lost race
        local.set_alias("m", "champion", 2, expected_version=1)
    assert [h["to_version"] for h in local.alias_history("m", "champion")] == [1, 2]


class Reviewed:
    """Model `m` (versions 1 and 2, `champion` on 1) whose `champion` is protected; `editor`
    requests, `reviewer` decides."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.editor, self.reviewer = as_user(store, "editor"), as_user(store, "reviewer")
        store.create_project("p")
        store.add_member("p", "editor", "editor")
        store.add_member("p", "reviewer", "reviewer")
        for n in (1, 2):
            store.register_model_version("m", project="p", files=files(store, b"w%d" % n))
        store.set_alias("m", "champion", 1)
        policy = store.set_policy("m", protected=["champion"], idempotency_key="policy")
        assert store.set_policy("m", protected=["champion"], idempotency_key="policy") == policy

    def requests(self) -> list[dict[str, Any]]:
        return self.store.list_requests("m")


def test_a_retried_promotion_request_and_votes_are_made_once(local: Store) -> None:
    team = Reviewed(local)
    with signed_in_as(team.editor):
        opened = local.request_promotion("m", "champion", 2, comment="c", idempotency_key="r")
        assert local.request_promotion("m", "champion", 2, comment="c", idempotency_key="r") == (
            opened
        )
    assert [r["id"] for r in team.requests()] == [opened["id"]]
    with signed_in_as(team.reviewer):
        approved = local.approve_request(opened["id"], idempotency_key="yes")
        # Without its key, a retried vote would be refused as a second vote.
        assert local.approve_request(opened["id"], idempotency_key="yes") == approved
        with pytest.raises(Conflict, match="already approved"):
            local.approve_request(opened["id"])
    assert approved["state"] == "approved"
    assert local.get_model_version("m@champion").version == 2
    assert [h["to_version"] for h in local.alias_history("m", "champion")] == [1, 2]


def test_retried_reject_and_cancel_answer_alike(local: Store) -> None:
    team = Reviewed(local)
    with signed_in_as(team.editor):
        first = local.request_promotion("m", "champion", 2)
        second = local.request_promotion("m", "champion", 2)
        cancelled = local.cancel_request(first["id"], idempotency_key="c")
        assert local.cancel_request(first["id"], idempotency_key="c") == cancelled
    with signed_in_as(team.reviewer):
        rejected = local.reject_request(second["id"], comment="no", idempotency_key="r")
        assert local.reject_request(second["id"], comment="no", idempotency_key="r") == rejected
    assert (cancelled["state"], rejected["state"]) == ("cancelled", "rejected")


def test_a_retried_move_of_a_protected_alias_names_the_same_request(local: Store) -> None:
    team = Reviewed(local)
    with signed_in_as(team.editor):
        with pytest.raises(ApprovalRequired) as first:
            local.set_alias("m", "champion", 2, idempotency_key="move")
        with pytest.raises(ApprovalRequired) as again:
            local.set_alias("m", "champion", 2, idempotency_key="move")
    assert again.value.to_dict() == first.value.to_dict()
    assert [r["id"] for r in team.requests()] == [first.value.context["request_id"]]


def test_a_retried_registration_to_a_protected_alias_opens_one_request(local: Store) -> None:
    team = Reviewed(local)
    with signed_in_as(team.editor):
        weights = files(local, b"w3")
        made = local.register_model_version(
            "m", files=weights, aliases=["champion"], idempotency_key="reg"
        )
        again = local.register_model_version(
            "m", files=weights, aliases=["champion"], idempotency_key="reg"
        )
    assert again == made and made.version == 3
    assert [(r["version"], r["state"]) for r in team.requests()] == [(3, "open")]


def test_retried_user_webhook_and_token_creations_make_one_each(local: Store) -> None:
    user = local.create_user("ann", idempotency_key="u")
    assert local.create_user("ann", idempotency_key="u") == user
    local.create_project("p")
    hook = local.create_webhook(
        "https://hooks.test/h", ["run.finished"], project="p", idempotency_key="h"
    )
    assert (
        local.create_webhook(
            "https://hooks.test/h", ["run.finished"], project="p", idempotency_key="h"
        )
        == hook
    )
    assert len(local.list_webhooks()) == 1 and hook["secret"]

    lost = local.create_token(user="ann", name="ci", idempotency_key="t")
    kept = local.create_token(user="ann", name="ci", idempotency_key="t")
    assert kept.id == lost.id and [x.id for x in local.list_tokens(user="ann")] == [lost.id]
    # The secret is never stored, so the retry gets a new one; the lost one stops working.
    assert kept.token and lost.token and kept.token != lost.token
    assert local.authenticate(kept.token).name == "ann"
    with pytest.raises(Unauthorized):
        local.authenticate(lost.token)
    with local.engine.connect() as conn:
        stored = conn.execute(select(t.idempotency_keys.c.response)).scalars().all()
    assert not any(lost.token in s or kept.token in s or hook["secret"] in s for s in stored)

    local.revoke_token(kept.id)
    with pytest.raises(Conflict, match="revoked since"):
        local.create_token(user="ann", name="ci", idempotency_key="t")


def test_keys_expire(local: Store) -> None:
    weights = files(local, b"w")
    local.register_model_version("m", project="p", files=weights, idempotency_key="old")
    local.register_model_version("m", files=weights, idempotency_key="other")
    with local.engine.begin() as conn:
        conn.execute(
            update(t.idempotency_keys).values(created_at=t.idempotency_keys.c.created_at - KEY_TTL)
        )
    # Past its time a key is new again, and the next keyed write sweeps the other expired ones.
    local._keys_swept_at = 0.0
    assert local.register_model_version("m", files=weights, idempotency_key="old").version == 3
    with local.engine.connect() as conn:
        left = conn.execute(select(t.idempotency_keys.c.key)).scalars().all()
    assert left == ["old"]
