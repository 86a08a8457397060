"""The OIDC provider fixture itself (oidc_provider.py): npm oidc-provider in node, its
discovery document, ID tokens, key rotation, loopback redirects on any port, the device
flow and refused logins."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from oidc_provider import (
    DEVICE_CODE_GRANT,
    LoginError,
    OidcProvider,
    free_port,
    pkce_pair,
)

SECRET = "s3cret-for-tests"
CALLBACK = "http://127.0.0.1/auth/oidc/callback"  # registered without a port: any port

CLIENTS: list[dict[str, Any]] = [
    {  # a confidential web server, as Registrum registers itself
        "client_id": "registrum",
        "client_secret": SECRET,
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
    {
        "client_id": "posting",
        "client_secret": SECRET,
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post",
    },
    {
        "client_id": "short-lived",
        "client_secret": SECRET,
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
]

USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "preferred_username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice",
        "groups": ["vision-team"],
    },
    "bob": {"preferred_username": "bob", "email": "bob@example.com", "groups": []},
}


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def callback(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or free_port()}/auth/oidc/callback"


def new_provider(folder: Path) -> OidcProvider:
    return OidcProvider(
        folder,
        clients=[dict(client) for client in CLIENTS],
        users={login: dict(claims) for login, claims in USERS.items()},
        id_token_ttl={"short-lived": 1},
    )


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider for the tests that change nothing in it."""
    with new_provider(tmp_path_factory.mktemp("oidc")) as running:
        yield running


@pytest.fixture
def own_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    """A provider of the test's own, for tests that restart it."""
    with new_provider(tmp_path) as running:
        yield running


def test_discovery_document(provider: OidcProvider) -> None:
    document = provider.discovery()
    assert document["issuer"] == provider.issuer
    assert provider.issuer.startswith("http://127.0.0.1:") and not provider.issuer.endswith("/")
    assert document["device_authorization_endpoint"] == f"{provider.issuer}/device/auth"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert {"profile", "email", "groups"} <= set(document["scopes_supported"])


def test_id_token_carries_the_users_claims(provider: OidcProvider) -> None:
    token = provider.id_token("registrum", SECRET, "alice", redirect_uri=callback(), nonce="xyz")
    header, payload = jwt_part(token, 0), jwt_part(token, 1)
    assert header["alg"] == "RS256"
    assert header["kid"] == provider.kid
    assert payload["iss"] == provider.issuer
    assert payload["aud"] == "registrum"
    assert payload["sub"] == "alice"
    assert payload["nonce"] == "xyz"
    assert payload["preferred_username"] == "alice"
    assert payload["name"] == "Alice"
    assert payload["email"] == "alice@example.com"
    assert payload["groups"] == ["vision-team"]
    assert payload["exp"] - payload["iat"] == 3600


def test_id_token_ttl_per_client(provider: OidcProvider) -> None:
    token = provider.id_token("short-lived", SECRET, "bob", redirect_uri=callback())
    payload = jwt_part(token, 1)
    assert payload["exp"] - payload["iat"] == 1
    assert payload["aud"] == "short-lived"


def test_login_redirects_to_any_loopback_port(provider: OidcProvider) -> None:
    port = free_port()
    verifier, challenge = pkce_pair()
    url = provider.authorization_url(
        "posting", redirect_uri=callback(port), state="st4te", code_challenge=challenge
    )
    redirect = provider.login(url, "alice")
    parts = urlsplit(redirect)
    assert (parts.netloc, parts.path) == (f"127.0.0.1:{port}", "/auth/oidc/callback")
    params = parse_qs(parts.query)
    assert params["state"] == ["st4te"]
    assert params["iss"] == [provider.issuer]
    # client_secret_post at the token endpoint
    response = provider.token_request(
        "posting",
        SECRET,
        {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": callback(port),
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    assert jwt_part(response.json()["id_token"], 1)["sub"] == "alice"


def test_authorization_without_pkce_is_refused(provider: OidcProvider) -> None:
    url = provider.authorization_url(
        "registrum", redirect_uri=callback(), state="s", code_challenge="x"
    )
    no_pkce = url.replace("&code_challenge=x&code_challenge_method=S256", "")
    redirect = provider.login(no_pkce, "alice")
    assert parse_qs(urlsplit(redirect).query)["error"] == ["invalid_request"]


def test_login_of_an_unknown_user_fails(provider: OidcProvider) -> None:
    _, challenge = pkce_pair()
    url = provider.authorization_url(
        "registrum", redirect_uri=callback(), state="s", code_challenge=challenge
    )
    with pytest.raises(LoginError, match="refused the login 'mallory'"):
        provider.login(url, "mallory")


def test_device_flow_for_a_confidential_client(provider: OidcProvider) -> None:
    document = provider.discovery()
    auth = requests.auth.HTTPBasicAuth("registrum", SECRET)
    started = requests.post(
        document["device_authorization_endpoint"],
        data={"scope": "openid profile groups"},
        auth=auth,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    grant = started.json()
    poll = {"grant_type": DEVICE_CODE_GRANT, "device_code": grant["device_code"]}
    pending = requests.post(document["token_endpoint"], data=poll, auth=auth, timeout=10)
    assert pending.json()["error"] == "authorization_pending"

    provider.approve_device(grant["verification_uri"], grant["user_code"], "alice")

    assert "interval" not in grant  # and oidc-provider never answers slow_down
    response = requests.post(document["token_endpoint"], data=poll, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    payload = jwt_part(response.json()["id_token"], 1)
    assert (payload["sub"], payload["groups"]) == ("alice", ["vision-team"])


def test_device_approval_from_the_complete_uri(provider: OidcProvider) -> None:
    grant = requests.post(
        provider.discovery()["device_authorization_endpoint"],
        data={"scope": "openid"},
        auth=requests.auth.HTTPBasicAuth("registrum", SECRET),
        timeout=10,
    ).json()
    provider.approve_device(grant["verification_uri_complete"], grant["user_code"], "bob")
    with pytest.raises(LoginError, match="did not succeed"):  # a code is used once
        provider.approve_device(grant["verification_uri"], grant["user_code"], "bob")


def test_rotate_keys_replaces_the_signing_key(own_provider: OidcProvider) -> None:
    issuer, old_kid = own_provider.issuer, own_provider.kid
    assert [key["kid"] for key in own_provider.jwks()["keys"]] == [old_kid]
    assert "d" not in own_provider.jwks()["keys"][0]  # only the public part is published

    own_provider.rotate_keys()

    assert own_provider.issuer == issuer
    kids = [key["kid"] for key in own_provider.jwks()["keys"]]
    assert kids == [own_provider.kid] and old_kid not in kids
    token = own_provider.id_token("registrum", SECRET, "alice", redirect_uri=callback())
    assert jwt_part(token, 0)["kid"] == own_provider.kid


def test_set_users_changes_the_claims(own_provider: OidcProvider) -> None:
    own_provider.set_users({**own_provider.users, "bob": {**USERS["bob"], "groups": ["admins"]}})
    token = own_provider.id_token("registrum", SECRET, "bob", redirect_uri=callback())
    assert jwt_part(token, 1)["groups"] == ["admins"]
