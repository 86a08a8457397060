"""Signing in through a real OpenID provider over HTTP: the authorization code flow with
PKCE, the session cookie and its CSRF token, groups to roles, key rotation, token exchange,
and every refusal (replayed state, bad nonce, wrong audience, expired token, unknown
issuer, disabled users and service accounts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests

from backends import PostgresServer
from oidc_provider import OidcProvider, free_port
from registrum.client.http import HttpStore
from registrum.server.oidc import OidcError, Provider
from serving import ADMIN_TOKEN
from sso_server import SECRET, Sso, client, params, users

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


def callback_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/auth/oidc/callback"


def test_the_sign_in_page_offers_the_provider(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    answer = requests.get(f"{sso.url}/auth/providers").json()
    assert answer == {
        "auth": True,
        "oidc": {
            "name": "Test IdP",
            "issuer": sso.provider.issuer,
            "login_url": "/auth/oidc/login",
        },
    }
    start = requests.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    sent = params(start.headers["location"])
    assert start.headers["location"].startswith(sso.provider.issuer)
    assert sent["redirect_uri"] == f"{sso.url}/auth/oidc/callback"
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["scope"] == "openid profile email groups"
    assert len(sent["state"]) >= 40 and len(sent["nonce"]) >= 40
    assert "code_verifier" not in sent and SECRET not in start.headers["location"]


def test_browser_sign_in_session_csrf_and_sign_out(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("vision")
        admin.create_project("nlp")
    web = requests.Session()
    answer = sso.sign_in("alice", web=web)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/#/models"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("registrum_session=rgs_")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback; behind TLS it is (next test)
    me = web.get(f"{sso.url}/api/v1/me").json()
    assert (me["name"], me["email"], me["groups"]) == (
        "alice",
        "alice@example.com",
        ["vision-team"],
    )
    assert me["roles"] == {"nlp": "viewer", "vision": "editor"}
    assert [p["name"] for p in web.get(f"{sso.url}/api/v1/projects").json()["items"]] == [
        "nlp",
        "vision",
    ]
    # A write with the cookie alone is refused; with the session's CSRF token it is made.
    body = {"project": "vision"}
    refused = web.post(f"{sso.url}/api/v1/runs", json=body)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.text
    wrong = web.post(f"{sso.url}/api/v1/runs", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    csrf = {"X-CSRF-Token": me["csrf_token"]}
    made = web.post(f"{sso.url}/api/v1/runs", json=body, headers=csrf)
    assert made.status_code == 200, made.text
    assert (
        web.post(f"{sso.url}/api/v1/runs", json={"project": "nlp"}, headers=csrf).status_code == 403
    )
    # API tokens keep working beside sessions.
    assert requests.get(f"{sso.url}/api/v1/me", headers=sso.admin()).json()["name"] == "admin"
    # Signing out needs the CSRF token too, then the cookie is worth nothing.
    assert web.post(f"{sso.url}/auth/signout").status_code == 403
    out = web.post(f"{sso.url}/auth/signout", headers=csrf)
    assert out.status_code == 204 and 'registrum_session=""' in out.headers["set-cookie"]
    stolen = requests.get(
        f"{sso.url}/api/v1/me", cookies={"registrum_session": cookie.split(";")[0].split("=", 1)[1]}
    )
    assert stolen.status_code == 401 and "session has ended" in stolen.text


def test_the_cookie_is_secure_behind_tls(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    answer = sso.sign_in("carol", forwarded_proto="https")
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_groups_give_roles_at_each_sign_in(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("vision")
        _, bob = sso.browser("bob")
        assert bob["server_admin"]  # ml-platform: server-admin
        _, alice = sso.browser("alice")
        assert alice["roles"] == {"vision": "editor"}
        members = {m.user: (m.role, m.source) for m in admin.list_members("vision")}
        assert members["alice"] == ("editor", "groups: vision-team")
        # The provider moves alice and bob out of their groups: the next sign-in says so.
        changed = users()
        changed["alice"]["groups"] = []
        changed["bob"]["groups"] = ["vision-team"]
        sso.provider.set_users(changed)
        _, alice = sso.browser("alice")
        assert alice["roles"] == {}
        _, bob = sso.browser("bob")
        assert not bob["server_admin"] and bob["roles"] == {"vision": "editor"}
        audit = admin.list_audit(project="vision")
        removed = [e for e in audit if e["action"] == "member.removed"]
        assert removed[0]["actor"] == "alice"
        assert removed[0]["before"] == {"role": "editor", "source": "groups: vision-team"}


def test_members_list_shows_where_a_role_came_from(
    sso_server: Callable[..., Sso], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from registrum.cli import main

    sso = sso_server()
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("vision")
        sso.browser("alice")
        sso.browser("carol")
        admin.add_member("vision", "carol", "reviewer")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGISTRUM_TOKEN", ADMIN_TOKEN)
        assert main(["members", "list", "vision", "--store", sso.url]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["alice"][:3] == ["editor", "groups:", "vision-team"]
    assert lines["carol"][:2] == ["reviewer", "hand"]


def test_a_key_rotation_at_the_provider(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    assert sso.sign_in("carol").status_code == 303
    old = sso.provider.kid
    sso.provider.rotate_keys()  # same issuer, a new key: the server fetches the keys again
    assert sso.provider.kid != old
    assert sso.sign_in("carol").status_code == 303


def test_a_replayed_callback_is_refused(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    web = requests.Session()
    start = web.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    back = sso.provider.login(start.headers["location"], "carol")
    assert web.get(back, allow_redirects=False).status_code == 303
    again = requests.get(back, allow_redirects=False)
    assert again.status_code == 400
    assert "unknown or already used" in again.text and "registrum_session" not in again.headers.get(
        "set-cookie", ""
    )
    # The same code under a state of a new sign-in: the provider refuses the used code.
    fresh = web.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    state = params(fresh.headers["location"])["state"]
    code = params(back)["code"]
    replayed = web.get(
        f"{sso.url}/auth/oidc/callback?code={quote(code)}&state={quote(state)}",
        allow_redirects=False,
    )
    assert replayed.status_code == 401
    assert "invalid_grant" in replayed.text


def test_a_callback_in_another_browser_is_refused(sso_server: Callable[..., Sso]) -> None:
    """A sign-in's callback link sent to someone else (to sign them in as the sender) is
    refused: the sign-in is bound to the browser that started it."""
    sso = sso_server()
    attacker = requests.Session()
    start = attacker.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    assert "registrum_signin=" in start.headers["set-cookie"]
    assert "HttpOnly" in start.headers["set-cookie"]
    back = sso.provider.login(start.headers["location"], "carol")
    victim = requests.Session()
    answer = victim.get(back, allow_redirects=False)
    assert answer.status_code == 400 and "started in another browser" in answer.text
    assert "registrum_session" not in answer.headers.get("set-cookie", "")


def test_a_bad_nonce_is_refused(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    web = requests.Session()
    start = web.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    location = start.headers["location"]
    nonce = params(location)["nonce"]
    back = sso.provider.login(location.replace(nonce, "forged-nonce"), "carol")
    answer = web.get(back, allow_redirects=False)
    assert answer.status_code == 401
    assert "nonce is not the one this sign-in sent" in answer.text
    assert "set-cookie" not in answer.headers


def test_refused_users(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        sso.browser("carol")
        admin.disable_user("carol")
        admin.create_user("alice", service=True)  # a service account takes the name first
    disabled = sso.sign_in("carol")
    assert disabled.status_code == 403 and "disabled" in disabled.text
    service = sso.sign_in("alice")
    assert service.status_code == 403 and "service account" in service.text
    unknown = requests.get(f"{sso.url}/auth/oidc/callback?state=made-up&code=x")
    assert unknown.status_code == 400
    denied = requests.Session()
    start = denied.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    state = params(start.headers["location"])["state"]
    error = denied.get(
        f"{sso.url}/auth/oidc/callback?state={state}&error=access_denied&error_description=no"
    )
    assert error.status_code == 400 and "did not sign you in" in error.text


def test_a_disabled_users_session_stops_working(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    web, _ = sso.browser("carol")
    requests.post(f"{sso.url}/api/v1/users/carol/disable", headers=sso.admin()).raise_for_status()
    assert web.get(f"{sso.url}/api/v1/me").status_code == 401


def test_next_stays_on_this_server(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    web = requests.Session()
    start = web.get(f"{sso.url}/auth/oidc/login?next=https://evil.example/", allow_redirects=False)
    back = sso.provider.login(start.headers["location"], "carol")
    assert web.get(back, allow_redirects=False).headers["location"] == "/#/"


# -- ID tokens refused -------------------------------------------------------------------------


def test_id_tokens_are_checked(sso_server: Callable[..., Sso], tmp_path: Path) -> None:
    sso = sso_server()
    provider = Provider(sso.provider.issuer)
    token = sso.provider.id_token("registrum", SECRET, "alice", redirect_uri=callback_uri())
    assert provider.verify(token, audience="registrum", nonce="n")["sub"] == "alice"
    with pytest.raises(OidcError, match="not meant for this server"):
        provider.verify(token, audience="another-server")
    with pytest.raises(OidcError, match="nonce"):
        provider.verify(token, audience="registrum", nonce="other")
    head, body, signature = token.split(".")
    tampered = f"{head}.{body[:-4]}AAAA.{signature}"
    with pytest.raises(OidcError):
        provider.verify(tampered, audience="registrum")
    with pytest.raises(OidcError, match="not a signed JWT"):
        provider.verify("not-a-jwt", audience="registrum")


def test_an_expired_id_token_is_refused(tmp_path: Path) -> None:
    with OidcProvider(
        tmp_path, clients=[client("short")], users=users(), id_token_ttl={"short": 1}
    ) as idp:
        token = idp.id_token("short", SECRET, "carol", redirect_uri=callback_uri())
        time.sleep(2.1)
        with pytest.raises(OidcError, match="has expired"):
            Provider(idp.issuer).verify(token, audience="short", leeway=0)


def test_the_discovery_document_must_name_the_issuer(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    wrong = Provider(sso.provider.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(OidcError, match="names issuer"):
        wrong.metadata()


# -- workload identity: token exchange -----------------------------------------------------------


def exchange(url: str, token: str) -> requests.Response:
    return requests.post(
        f"{url}/auth/token-exchange",
        data={"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": ID_TOKEN},
    )


def test_token_exchange_for_a_service_account(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    with closing(HttpStore(sso.url, token=ADMIN_TOKEN)) as admin:
        admin.create_project("vision")
        admin.create_user("ci-bot", service=True)
        admin.add_member("vision", "ci-bot", "editor")
    ci_token = sso.provider.id_token(
        "ci-system", SECRET, "ci-runner-1", redirect_uri=callback_uri()
    )
    answer = exchange(sso.url, ci_token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"] == "ci-bot"
    with closing(HttpStore(sso.url, token=body["access_token"])) as bot:
        assert bot.whoami().name == "ci-bot"
        bot.create_run("vision")
    listed = requests.get(f"{sso.url}/api/v1/tokens?user=ci-bot", headers=sso.admin()).json()
    exchanged = listed["items"][0]
    assert exchanged["name"] == "token exchange"
    assert 3500 < exchanged["expires_at"] - time.time() <= 3600


def test_token_exchange_refusals(sso_server: Callable[..., Sso], tmp_path: Path) -> None:
    sso = sso_server()
    requests.post(
        f"{sso.url}/api/v1/users", json={"name": "ci-bot", "service": True}, headers=sso.admin()
    ).raise_for_status()
    # A subject the rule does not admit.
    alice = sso.provider.id_token("ci-system", SECRET, "alice", redirect_uri=callback_uri())
    refused = exchange(sso.url, alice)
    assert refused.status_code == 401 and "does not match 'ci-runner-*'" in refused.text
    # An ID token meant for another audience.
    other = sso.provider.id_token("other-app", SECRET, "ci-runner-1", redirect_uri=callback_uri())
    refused = exchange(sso.url, other)
    assert refused.status_code == 401 and "not meant for this server" in refused.text
    # An issuer this server does not trust: another provider.
    with OidcProvider(tmp_path / "rogue", clients=[client("ci-system")], users=users()) as rogue:
        rogue_token = rogue.id_token(
            "ci-system", SECRET, "ci-runner-1", redirect_uri=callback_uri()
        )
        refused = exchange(sso.url, rogue_token)
        assert refused.status_code == 401 and "is not trusted here" in refused.text
        # Its token, claiming to be the trusted issuer's, fails the signature check.
        assert urlsplit(rogue.issuer).port != urlsplit(sso.provider.issuer).port
    bad = requests.post(f"{sso.url}/auth/token-exchange", data={"grant_type": "password"})
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"
    missing = requests.post(f"{sso.url}/auth/token-exchange", data={"grant_type": EXCHANGE})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    garbage = exchange(sso.url, "not-a-jwt")
    assert garbage.status_code == 400


def test_token_exchange_gives_service_accounts_only(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    requests.post(
        f"{sso.url}/api/v1/users", json={"name": "ci-bot"}, headers=sso.admin()
    ).raise_for_status()  # a person's account under that name: no token for it
    token = sso.provider.id_token("ci-system", SECRET, "ci-runner-1", redirect_uri=callback_uri())
    refused = exchange(sso.url, token)
    assert refused.status_code == 401 and "not a service account" in refused.text


# -- registrum login's server side ---------------------------------------------------------------


def test_device_sign_in_over_http(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    started = requests.post(f"{sso.url}/auth/device").json()
    assert set(started) >= {"login_id", "user_code", "verification_uri", "interval"}
    pending = requests.post(f"{sso.url}/auth/device/token", json={"login_id": started["login_id"]})
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    sso.provider.approve_device(started["verification_uri"], started["user_code"], "alice")
    done = requests.post(f"{sso.url}/auth/device/token", json={"login_id": started["login_id"]})
    assert done.status_code == 200, done.text
    assert done.json()["user"] == "alice"
    with closing(HttpStore(sso.url, token=done.json()["access_token"])) as alice:
        assert alice.whoami().name == "alice"
    used = requests.post(f"{sso.url}/auth/device/token", json={"login_id": started["login_id"]})
    assert used.status_code == 400 and used.json()["error"] == "expired_token"


def test_no_device_flow_for_a_client_without_it(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server(device=False)
    answer = requests.post(f"{sso.url}/auth/device")
    assert answer.status_code == 404 and "no device sign-in" in answer.text


def test_cli_code_needs_the_verifier(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    web = requests.Session()
    start = web.get(
        f"{sso.url}/auth/oidc/login",
        params={"cli_port": 45678, "cli_state": "st", "cli_challenge": "x" * 43},
        allow_redirects=False,
    )
    back = sso.provider.login(start.headers["location"], "carol")
    to_cli = web.get(back, allow_redirects=False)
    assert to_cli.status_code == 303
    sent = params(to_cli.headers["location"])
    assert to_cli.headers["location"].startswith("http://127.0.0.1:45678/?")
    assert sent["state"] == "st"
    wrong = requests.post(
        f"{sso.url}/auth/cli/token", json={"code": sent["code"], "code_verifier": "guess"}
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    bad_port = requests.get(
        f"{sso.url}/auth/oidc/login",
        params={"cli_port": 80, "cli_state": "s", "cli_challenge": "c"},
    )
    assert bad_port.status_code == 400


def test_without_a_provider_the_sign_in_routes_say_so(tmp_path: Path) -> None:
    from serving import auth_server

    with auth_server(tmp_path, ()) as (url, _, _):
        assert requests.get(f"{url}/auth/providers").json() == {"auth": True, "oidc": None}
        answer = requests.get(f"{url}/auth/oidc/login")
        assert answer.status_code == 404 and "--oidc-issuer" in answer.text


def test_replicas_share_sign_ins_and_sessions(
    sso_server: Callable[..., Sso], postgres: PostgresServer
) -> None:
    """Two servers on one PostgreSQL database: a sign-in started on one finishes on the
    other, and the session works on both (nothing of it lives in a server's memory)."""
    with postgres.database() as database:
        first = sso_server(store_url=database)
        second = sso_server(store_url=database, provider=first.provider)
        web = requests.Session()
        start = web.get(f"{first.url}/auth/oidc/login", allow_redirects=False)
        back = first.provider.login(start.headers["location"], "alice")
        assert back.startswith(f"{first.url}/auth/oidc/callback?")
        finished = web.get(back.replace(first.url, second.url), allow_redirects=False)
        assert finished.status_code == 303, finished.text
        for server in (first, second):
            assert web.get(f"{server.url}/api/v1/me").json()["name"] == "alice"
        me = web.get(f"{first.url}/api/v1/me").json()
        csrf = {"X-CSRF-Token": me["csrf_token"]}
        assert web.post(f"{second.url}/auth/signout", headers=csrf).status_code == 204
        assert (
            requests.get(
                f"{first.url}/api/v1/me",
                cookies={"registrum_session": finished.cookies["registrum_session"]},
            ).status_code
            == 401
        )


def test_a_provider_that_is_down_is_a_502(sso_server: Callable[..., Sso]) -> None:
    sso = sso_server()
    sso.provider.stop()
    started = requests.post(f"{sso.url}/auth/device")
    assert started.status_code == 502
    assert started.json()["error"]["code"] == "identity_provider_unavailable"
    page = requests.get(f"{sso.url}/auth/oidc/login", allow_redirects=False)
    assert page.status_code == 502 and "cannot be reached" in page.text
    polled = requests.post(f"{sso.url}/auth/device/token", json={"login_id": "x"})
    assert polled.status_code == 400  # an unknown sign-in: the provider is not asked
