"""What the web UI's model pages read from the API: the signed-in user's roles (to offer only
the actions they may take), over a real server with and without auth."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests

from registrum.client.http import HttpStore
from registrum.server import Settings
from serving import auth_server, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    users = ("padmin", "reviewer", "viewer", "outsider")
    with auth_server(tmp_path, users) as (url, _, tokens):
        with closing(HttpStore(url, token=tokens["padmin"])) as padmin:
            padmin.create_project("p")
            padmin.create_project("q")
            padmin.add_member("p", "reviewer", "reviewer")
            padmin.add_member("p", "viewer", "viewer")
            padmin.add_member("q", "viewer", "editor")
        yield url, tokens


def me(url: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{url}/api/v1/me", headers=headers, timeout=10)


def test_me_names_the_role_held_in_each_project(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    expected = {
        "padmin": {"p": "admin", "q": "admin"},  # the creator of a project is its admin
        "reviewer": {"p": "reviewer"},
        "viewer": {"p": "viewer", "q": "editor"},
        "outsider": {},
        "admin": {},  # a server admin holds every role without being a member
    }
    for name, roles in expected.items():
        answer = me(url, tokens[name])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["name"] == name and body["roles"] == roles
        assert body["server_admin"] is (name == "admin")
    assert me(url, None).status_code == 401


def test_me_follows_role_changes(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    with closing(HttpStore(url, token=tokens["padmin"])) as padmin:
        padmin.add_member("p", "viewer", "reviewer")
        padmin.remove_member("q", "viewer")
    assert me(url, tokens["viewer"]).json()["roles"] == {"p": "reviewer"}


def test_me_without_auth_is_the_local_user_who_may_do_everything(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/db.sqlite", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        body = me(url, None).json()
        assert (body["name"], body["server_admin"], body["roles"]) == ("local", True, {})
        with closing(HttpStore(url)) as client:
            assert client.whoami().name == "local"  # the client reads the record as before
