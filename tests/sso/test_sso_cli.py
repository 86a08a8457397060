"""`registrum login` and `logout` as a person runs them: the real command in a process of
its own, signing in at the real provider by the device flow or by a browser that comes back
to the command's loopback port; then a scoped token made and used from the CLI."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from registrum.cli import main
from registrum.client.api import Client
from registrum.client.credentials import stored_login
from registrum.client.http import HttpStore
from serving import ADMIN_TOKEN, stop
from sso_server import Sso


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env.update(
        REGISTRUM_CONFIG=str(tmp_path / "config" / "credentials.json"),
        REGISTRUM_HOME=str(tmp_path / "home"),
        BROWSER="false",  # a browser that opens nothing, should one be asked for
    )
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "registrum.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """The first stdout line of `proc` matching `pattern`."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(
        f"no line matched {pattern!r}: {seen} {proc.stderr.read() if proc.stderr else ''}"
    )


def finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    return out


def test_login_by_the_device_flow_and_logout(
    sso_server: Callable[..., Sso], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sso = sso_server()
    env = cli_env(tmp_path)
    proc = start(["login", "--server", sso.url], env)
    uri = read_until(proc, r"open (\S+)$").group(1)
    code = read_until(proc, r"enter the code (\S+)").group(1)
    sso.provider.approve_device(uri, code, "alice")
    out = finish(proc)
    assert f"signed in to {sso.url} as alice" in out
    assert f"export REGISTRUM_URL={sso.url}" in out
    path = Path(env["REGISTRUM_CONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Any client of that server now uses the stored token (no REGISTRUM_TOKEN needed).
    for key, value in env.items():
        if key.startswith("REGISTRUM_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("REGISTRUM_TOKEN", raising=False)
    login = stored_login(sso.url)
    assert login is not None and login["user"] == "alice"
    with Client(sso.url) as client:
        assert client.whoami().name == "alice"
    listed = requests.get(f"{sso.url}/api/v1/tokens?user=alice", headers=sso.admin()).json()
    assert [t["name"] for t in listed["items"]] == ["registrum login"]
    # Logging out revokes the token at the server and forgets it here.
    out = finish(start(["logout", "--server", sso.url], env))
    assert f"signed out of {sso.url}" in out
    assert stored_login(sso.url) is None
    answer = requests.get(
        f"{sso.url}/api/v1/me", headers={"Authorization": f"Bearer {login['token']}"}
    )
    assert answer.status_code == 401 and "revoked" in answer.text


def test_login_in_a_browser_through_the_loopback(
    sso_server: Callable[..., Sso], tmp_path: Path
) -> None:
    sso = sso_server(device=False)  # no device flow for this client: the browser it is
    env = cli_env(tmp_path)
    proc = start(["login", "--server", sso.url, "--no-open"], env)
    url = read_until(proc, r"open (http\S+/auth/oidc/login\S+)$").group(1)
    browser = requests.Session()
    to_provider = browser.get(url, allow_redirects=False)
    back = sso.provider.login(to_provider.headers["location"], "carol", session=browser)
    to_cli = browser.get(back, allow_redirects=False)
    assert to_cli.headers["location"].startswith("http://127.0.0.1:")
    page = browser.get(to_cli.headers["location"])
    assert page.status_code == 200 and "Signed in" in page.text
    out = finish(proc)
    assert f"signed in to {sso.url} as carol" in out


def test_login_to_a_server_without_a_provider(tmp_path: Path) -> None:
    from serving import auth_server

    with auth_server(tmp_path, ()) as (url, _, _):
        proc = start(["login", "--server", url], cli_env(tmp_path))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert "signs nobody in through an identity provider" in err
    proc = start(["login"], cli_env(tmp_path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "name the server" in err


def test_service_account_and_scoped_token_from_the_cli(
    sso_server: Callable[..., Sso],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sso = sso_server()
    monkeypatch.setenv("REGISTRUM_TOKEN", ADMIN_TOKEN)
    store = ["--store", sso.url]
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("vision")
        admin.create_project("nlp")
    assert main(["users", "add", "ci-bot", "--service", *store]) == 0
    assert "added service account ci-bot" in capsys.readouterr().out
    assert main(["members", "add", "vision", "ci-bot", "editor", *store]) == 0
    capsys.readouterr()
    args = ["tokens", "create", "--user", "ci-bot", "--name", "ci", "--project", "vision"]
    assert main([*args, "--role", "editor", "--expires-in-days", "30", *store]) == 0
    out = capsys.readouterr().out
    assert "for ci-bot, at most editor of vision, expires" in out
    secret = out.strip().splitlines()[-1]
    assert main(["tokens", "list", "--user", "ci-bot", *store]) == 0
    listed = capsys.readouterr().out
    assert "editor of vision" in listed
    assert main(["users", "list", *store]) == 0
    users: dict[str, Any] = {
        line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]
    }
    assert users["ci-bot"][2] == "yes"  # the service column
    me = requests.get(f"{sso.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["scope"] == {"project": "vision", "role": "editor"}
    assert me.json()["roles"] == {"vision": "editor"}
    # The token does what its scope says, and no more, over HTTP.
    with closing(HttpStore(sso.url, token=secret)) as bot:
        bot.create_run("vision")
        with pytest.raises(Exception, match="scoped to project 'vision'"):
            bot.create_run("nlp")
    monkeypatch.setenv("REGISTRUM_TOKEN", secret)
    assert main(["tokens", "create", "--name", "wider", *store]) == 1
    assert "a scoped token cannot make tokens" in capsys.readouterr().err
