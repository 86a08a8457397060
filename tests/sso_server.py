"""A Registrum server signing people in through a real OpenID provider (npm oidc-provider,
oidc_provider.py), with a role map and a trusted issuer for token exchange: `sso_servers`
makes them (tests/sso and the UI's sign-in tests use it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from oidc_provider import DEVICE_CODE_GRANT, OidcProvider
from registrum.server import Settings, create_app
from registrum.server.oidc import OidcSettings, RoleMap, TrustRule
from serving import ADMIN_TOKEN, serve_app

SECRET = "registrum-client-secret-for-tests"
CALLBACK = "http://127.0.0.1/auth/oidc/callback"  # any port (a loopback redirect URI)
ROLE_MAP = {
    "ml-platform": "server-admin",
    "vision-team": {"vision": "editor", "*": "viewer"},
}


def client(client_id: str, *, device: bool = True) -> dict[str, Any]:
    grants = ["authorization_code", *([DEVICE_CODE_GRANT] if device else [])]
    return {
        "client_id": client_id,
        "client_secret": SECRET,
        "redirect_uris": [CALLBACK],
        "grant_types": grants,
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def users() -> dict[str, dict[str, Any]]:
    return {
        "alice": {
            "preferred_username": "alice",
            "email": "alice@example.com",
            "name": "Alice",
            "groups": ["vision-team"],
        },
        "bob": {"preferred_username": "bob", "email": "bob@example.com", "groups": ["ml-platform"]},
        "carol": {"preferred_username": "carol", "email": "carol@example.com", "groups": []},
        # A CI job's identity, as a CI system's issuer names it.
        "ci-runner-1": {"preferred_username": "ci-runner-1", "groups": []},
    }


@dataclass
class Sso:
    """A provider and a server that trusts it: `url`, the admin's token, and helpers."""

    provider: OidcProvider
    url: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def sign_in(
        self, username: str, *, web: requests.Session | None = None, forwarded_proto: str = ""
    ) -> requests.Response:
        """The browser's flow, over HTTP: the server's login, the provider's pages, the
        callback; the callback's answer (the session cookie lands in `web`)."""
        web = web if web is not None else requests.Session()
        start = web.get(f"{self.url}/auth/oidc/login?next=%23%2Fmodels", allow_redirects=False)
        assert start.status_code == 303, start.text
        back = self.provider.login(start.headers["location"], username)
        headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
        return web.get(back, allow_redirects=False, headers=headers)

    def browser(self, username: str) -> tuple[requests.Session, dict[str, Any]]:
        """A session signed in as `username`, and its /me."""
        web = requests.Session()
        answer = self.sign_in(username, web=web)
        assert answer.status_code == 303, answer.text
        me = web.get(f"{self.url}/api/v1/me")
        assert me.status_code == 200, me.text
        return web, me.json()


def params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@contextmanager
def sso_servers(folder: Path) -> Iterator[Callable[..., Sso]]:
    """Yields a factory of providers with a server over each, stopped at the end: `device`:
    whether the server's client may use the device flow; other keywords go to
    OidcSettings."""
    with ExitStack() as stack:

        def make(
            *,
            device: bool = True,
            store_url: str | None = None,
            provider: OidcProvider | None = None,
            **overrides: Any,
        ) -> Sso:
            """A server over a new provider, or over `provider` (a replica of another
            server when `store_url` names the same database)."""
            place = folder / f"sso-{len(stack._exit_callbacks)}"
            place.mkdir(parents=True)
            if provider is None:
                provider = OidcProvider(
                    place,
                    clients=[
                        client("registrum", device=device),
                        client("other-app"),
                        client("ci-system"),
                    ],
                    users=users(),
                )
                stack.enter_context(provider)
            settings = Settings(
                store_url=store_url or f"sqlite:///{place}/r.db",
                blobs=place / "blobs",
                auth=True,
                admin_token=ADMIN_TOKEN,
                webhook_senders=0,
                oidc=OidcSettings(
                    issuer=provider.issuer,
                    client_id="registrum",
                    client_secret=SECRET,
                    role_map=RoleMap.parse(ROLE_MAP),
                    provider_name="Test IdP",
                    **overrides,
                ),
                trust=(
                    TrustRule(
                        issuer=provider.issuer,
                        subject="ci-runner-*",
                        user="ci-bot",
                        audience="ci-system",
                    ),
                ),
            )
            url = stack.enter_context(serve_app(create_app(settings)))
            return Sso(provider, url)

        yield make
