"""The store's side of single sign-on and machine identities, on SQLite and PostgreSQL:
users made on first sign-in, roles from groups (applied at each sign-in, beside roles given
by hand), service accounts, scoped tokens, browser sessions and one-time sign-in states.

The provider's side (real ID tokens, the browser, the CLI) is in tests/sso.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import BACKENDS, backend_params
from registrum.errors import Conflict, Forbidden, InvalidArgument, Unauthorized
from registrum.server.oidc import RoleMap
from registrum.store.acting import Principal, signed_in_as
from registrum.store.service import Store

ISSUER = "https://idp.example.com"
ROLE_MAP = RoleMap.parse(
    {
        "ml-platform": "server-admin",
        "vision-team": {"vision": "editor", "*": "viewer"},
        "vision-leads": {"vision": "admin"},
        "nlp-team": {"nlp": "reviewer"},
    }
)


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened


def sign_in(store: Store, name: str, groups: list[str], subject: str | None = None) -> Any:
    return store.sign_in_external(
        issuer=ISSUER,
        subject=subject or f"sub-{name}",
        name=name,
        email=f"{name}@example.com",
        groups=groups,
        grants=ROLE_MAP.grants(groups),
    )


def as_user(store: Store, name: str) -> Principal:
    user = next(u for u in store.list_users() if u.name == name)
    return Principal(user_id=user.id, name=user.name, server_admin=user.server_admin)


def roles(store: Store, project: str) -> dict[str, tuple[str, str | None]]:
    return {m.user: (m.role, m.source) for m in store.list_members(project)}


def test_role_map_grants_the_highest_role_per_project() -> None:
    grants = ROLE_MAP.grants(["vision-team", "vision-leads", "unknown"])
    assert not grants.server_admin
    assert grants.projects == {"vision": ("admin", "groups: vision-leads")}
    assert grants.every == ("viewer", "groups: vision-team")
    assert ROLE_MAP.grants(["ml-platform"]).server_admin
    assert ROLE_MAP.grants([]).projects == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["a"], "must map group names"),
        ({"g": "owner"}, "server-admin or to roles per project"),
        ({"g": {"p": "boss"}}, "roles are viewer, editor, reviewer, admin"),
        ({"g": {}}, "server-admin or to roles per project"),
    ],
)
def test_a_bad_role_map_is_refused_naming_the_group(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RoleMap.parse(data)


def test_first_sign_in_makes_the_user_and_applies_the_groups(store: Store) -> None:
    for project in ("vision", "nlp"):
        store.create_project(project)
    user = sign_in(store, "alice", ["vision-team"])
    assert (user.name, user.email, user.groups) == ("alice", "alice@example.com", ["vision-team"])
    assert not user.server_admin and not user.service
    assert roles(store, "vision")["alice"] == ("editor", "groups: vision-team")
    assert roles(store, "nlp")["alice"] == ("viewer", "groups: vision-team")
    # The same subject signs in again: the same user, not a second one.
    assert sign_in(store, "alice", ["vision-team"]).id == user.id
    assert [u.name for u in store.list_users()] == ["alice"]
    events = [e for e in store.list_audit(project="vision") if e["action"] == "member.added"]
    assert events[-1]["after"] == {"role": "editor", "source": "groups: vision-team"}
    assert events[-1]["actor"] == "alice"


def test_each_sign_in_replaces_the_roles_groups_gave(store: Store) -> None:
    for project in ("vision", "nlp"):
        store.create_project(project)
    sign_in(store, "alice", ["vision-team"])
    sign_in(store, "alice", ["nlp-team"])
    assert "alice" not in roles(store, "vision")
    assert roles(store, "nlp")["alice"] == ("reviewer", "groups: nlp-team")
    actions = [e["action"] for e in store.list_audit(project="vision")]
    assert "member.removed" in actions
    sign_in(store, "alice", [])
    assert "alice" not in roles(store, "nlp")


def test_a_role_given_by_hand_stays(store: Store) -> None:
    store.create_project("vision")
    sign_in(store, "alice", [])
    store.add_member("vision", "alice", "reviewer")
    sign_in(store, "alice", ["vision-team"])  # would give editor: the hand's role wins
    assert roles(store, "vision")["alice"] == ("reviewer", None)
    sign_in(store, "alice", [])
    assert roles(store, "vision")["alice"] == ("reviewer", None)
    # Given by hand over a role from groups, it becomes a hand's role.
    sign_in(store, "bob", ["vision-team"])
    store.add_member("vision", "bob", "editor")
    sign_in(store, "bob", [])
    assert roles(store, "vision")["bob"] == ("editor", None)


def test_every_project_includes_projects_made_later(store: Store) -> None:
    sign_in(store, "alice", ["vision-team"])
    sign_in(store, "carol", [])
    with signed_in_as(as_user(store, "carol")):
        store.create_project("later")
    assert roles(store, "later") == {
        "carol": ("admin", None),
        "alice": ("viewer", "groups: vision-team"),
    }
    with signed_in_as(as_user(store, "alice")):
        assert [p.name for p in store.list_projects()] == ["later"]
    sign_in(store, "alice", [])  # the group is gone: so is the role
    assert "alice" not in roles(store, "later")


def test_server_admin_from_groups_comes_and_goes(store: Store) -> None:
    assert sign_in(store, "bob", ["ml-platform"]).server_admin
    assert not sign_in(store, "bob", ["vision-team"]).server_admin
    events = [e for e in store.list_audit() if e["action"] == "user.changed"]
    assert [e["after"]["server_admin"] for e in events] == [False, True]  # newest first
    assert {e["after"]["source"] for e in events} == {"groups"}


def test_refused_sign_ins(store: Store) -> None:
    sign_in(store, "alice", [])
    store.disable_user("alice")
    with pytest.raises(Unauthorized, match="disabled"):
        sign_in(store, "alice", [])
    store.create_user("ci-bot", service=True)
    with pytest.raises(Forbidden, match="service account"):
        sign_in(store, "ci-bot", [])
    store.create_user("carol")  # made by hand: the name is not the provider's to take
    with pytest.raises(Conflict, match="taken"):
        sign_in(store, "carol", [])
    with pytest.raises(InvalidArgument):
        sign_in(store, "bad/name", [])


def test_service_accounts(store: Store) -> None:
    store.create_project("vision")
    bot = store.create_user("ci-bot", service=True)
    assert bot.service and not bot.server_admin
    with pytest.raises(InvalidArgument, match="cannot be a server admin"):
        store.create_user("root-bot", service=True, server_admin=True)
    store.create_user("alice")
    store.add_member("vision", "alice", "admin")
    store.add_member("vision", "ci-bot", "editor")
    with signed_in_as(as_user(store, "ci-bot")), pytest.raises(Forbidden, match="service account"):
        store.create_token(name="own")
    with signed_in_as(as_user(store, "alice")), pytest.raises(Forbidden, match="server admin"):
        store.create_token(user="ci-bot")
    made = store.create_token(user="ci-bot", project="vision", role="editor")  # an admin may
    assert made.user == "ci-bot"


def test_a_scoped_token_does_at_most_its_scope(store: Store) -> None:
    store.create_user("alice")
    for project in ("vision", "nlp"):
        store.create_project(project)
        store.add_member(project, "alice", "admin")
    scoped = store.create_token(user="alice", name="ci", project="vision", role="editor")
    assert (scoped.project, scoped.role) == ("vision", "editor")
    listed = store.list_tokens(user="alice")
    assert [(k.name, k.project, k.role) for k in listed] == [("ci", "vision", "editor")]
    assert scoped.token is not None
    principal = store.authenticate(scoped.token)
    assert principal.scope == ("vision", "editor") and not principal.server_admin
    with signed_in_as(principal):
        run = store.create_run("vision")  # editor's work: allowed
        store.log_params(run.id, {"lr": 0.1})
        assert [p.name for p in store.list_projects()] == ["vision"]
        assert store.my_roles() == {"vision": "editor"}
        with pytest.raises(Forbidden, match="scoped to editor"):
            store.add_member("vision", "alice", "viewer")  # alice is admin, the token is not
        with pytest.raises(Forbidden, match="scoped to project 'vision'"):
            store.create_run("nlp")
        with pytest.raises(Forbidden, match="scoped to project 'vision'"):
            store.get_project("nlp")
        with pytest.raises(Forbidden, match="cannot create project"):
            store.create_project("new")
        with pytest.raises(Forbidden, match="scoped token cannot make tokens"):
            store.create_token(name="wider")
        with pytest.raises(Forbidden, match="scoped token cannot revoke"):
            store.revoke_token(scoped.id)
    # Its user's role drops to viewer: the token drops with it (the lower of the two).
    store.create_user("bob")
    store.add_member("vision", "bob", "admin")
    store.add_member("vision", "alice", "viewer")
    with signed_in_as(store.authenticate(scoped.token)), pytest.raises(Forbidden):
        store.create_run("vision")


def test_a_scope_must_be_usable(store: Store) -> None:
    store.create_user("alice")
    store.create_project("vision")
    with pytest.raises(Conflict, match="members add vision alice editor"):
        store.create_token(user="alice", project="vision", role="editor")
    with pytest.raises(InvalidArgument, match="both a project and a role"):
        store.create_token(user="alice", project="vision")
    with pytest.raises(InvalidArgument, match="role 'boss'"):
        store.create_token(user="alice", project="vision", role="boss")
    store.create_user("root", server_admin=True)
    scoped = store.create_token(user="root", project="vision", role="reviewer")
    assert scoped.token is not None
    with signed_in_as(store.authenticate(scoped.token)):
        with pytest.raises(Forbidden, match="server admin"):
            store.list_users()
        assert store.my_roles() == {"vision": "reviewer"}
        assert not store.whoami().server_admin


def test_browser_sessions(store: Store) -> None:
    sign_in(store, "alice", [])
    secret = store.create_session("alice", ttl=3600)
    assert store.authenticate_session(secret).name == "alice"
    assert store.end_session(secret)
    with pytest.raises(Unauthorized, match="session has ended"):
        store.authenticate_session(secret)
    short = store.create_session("alice", ttl=0.001)
    with pytest.raises(Unauthorized):
        store.authenticate_session(short + "x")
    live = store.create_session("alice", ttl=3600)
    store.disable_user("alice")
    with pytest.raises(Unauthorized, match="disabled"):
        store.authenticate_session(live)


def test_a_sign_in_state_is_taken_once(store: Store) -> None:
    store.start_login("state-1", "browser", {"nonce": "n"}, ttl=60)
    assert store.take_login("state-1", "device") is None  # another kind: and it is gone
    store.start_login("state-2", "browser", {"nonce": "n"}, ttl=60)
    assert store.peek_login("state-2", "browser") == {"nonce": "n"}
    assert store.take_login("state-2", "browser") == {"nonce": "n"}
    assert store.take_login("state-2", "browser") is None
    store.start_login("state-3", "browser", {}, ttl=-1)
    assert store.take_login("state-3", "browser") is None
