"""A real OpenID Connect provider for the SSO tests: npm's `oidc-provider` (pinned in
provider/package.json, installed by `make setup` with `npm ci --prefix tests/sso/provider`),
run by node as a separate process on 127.0.0.1 over plain HTTP.

    provider = OidcProvider(
        tmp_path,
        clients=[{
            "client_id": "registrum",
            "client_secret": "s3cret",
            "redirect_uris": ["http://127.0.0.1/auth/oidc/callback"],  # any port
            "grant_types": ["authorization_code", DEVICE_CODE_GRANT],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
        users={"alice": {"preferred_username": "alice", "email": "alice@example.com",
                         "name": "Alice", "groups": ["vision-team"]}},
    ).start()
    ...
    provider.stop()

Users are plain dicts: login name -> the claims the provider releases for that account
(`sub` is always the login name; scopes map to claims as openid: sub, profile:
preferred_username and name, email: email and email_verified, groups: groups, and the ID
token carries them). Any password is accepted for a known login; any other login fails.

`clients` are oidc-provider client metadata. A client that names no `application_type`
and registers only http loopback redirect URIs is registered as a native client, for which
oidc-provider accepts the redirect URI with any port (RFC 8252 §7.3): the server under test
registers `http://127.0.0.1/auth/oidc/callback` and redirects to
`http://127.0.0.1:PORT/auth/oidc/callback`. PKCE (S256) is required for every client.

State (sessions, codes, tokens) lives in the node process: `restart()`, `rotate_keys()`
and `set_users()` start it again on the same port and issuer, forgetting all of it. The
provider's stdout and stderr are in `folder` (provider.stdout.log, provider.stderr.log).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import time
import weakref
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "DEVICE_CODE_GRANT",
    "PROVIDER_DIR",
    "LoginError",
    "OidcProvider",
    "free_port",
    "pkce_pair",
    "rsa_jwk",
]

PROVIDER_DIR = Path(__file__).resolve().parent / "sso" / "provider"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
START_TIMEOUT = 30.0
PASSWORD = "any-password"  # the development sign-in accepts any password
_MAX_STEPS = 20  # redirects and forms in one sign-in, well above the 6 or so it takes


class LoginError(RuntimeError):
    """The provider's pages did not lead to the client (or to the device success page)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def rsa_jwk() -> dict[str, str]:
    """A fresh RSA 2048 private key as a JWK for RS256 signing; its `kid` is its RFC 7638
    thumbprint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_numbers()
    public = private.public_numbers
    n, e = _b64url_uint(public.n), _b64url_uint(public.e)
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"))
    return {
        "kty": "RSA",
        "kid": _b64url(hashlib.sha256(canonical.encode()).digest()),
        "use": "sig",
        "alg": "RS256",
        "n": n,
        "e": e,
        "d": _b64url_uint(private.d),
        "p": _b64url_uint(private.p),
        "q": _b64url_uint(private.q),
        "dp": _b64url_uint(private.dmp1),
        "dq": _b64url_uint(private.dmq1),
        "qi": _b64url_uint(private.iqmp),
    }


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 code challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Form:
    def __init__(self, action: str, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: list[tuple[str, str, str]] = []  # (name, value, type)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.fields}


class _PageParser(HTMLParser):
    """The forms of a page (action, method, named inputs) and its text (no title)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.text: list[str] = []
        self._form: _Form | None = None
        self._skip = 0  # inside <style> or <script>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag in ("style", "script", "title"):
            self._skip += 1
        elif tag == "form":
            self._form = _Form(attributes.get("action", ""), attributes.get("method", "get"))
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attributes.get("name"):
            self._form.fields.append(
                (
                    attributes["name"],
                    attributes.get("value", ""),
                    attributes.get("type", "text").lower(),
                )
            )

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data.strip())


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def _basic_auth(client_id: str, client_secret: str) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded before base64.
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class OidcProvider:
    """npm oidc-provider as a node process on 127.0.0.1 (see the module's docstring).

    `users` and `clients` may be changed in place; they take effect on `restart()`.
    """

    def __init__(
        self,
        folder: Path,
        *,
        clients: list[dict[str, Any]],
        users: dict[str, dict[str, Any]],
        id_token_ttl: dict[str, int] | None = None,
        port: int = 0,
    ) -> None:
        self.folder = Path(folder)
        self.clients = clients
        self.users = users
        self.id_token_ttl = dict(id_token_ttl or {})
        self.port = port  # 0 until the first start picks one; then kept across restarts
        self.keys: list[dict[str, str]] = [rsa_jwk()]
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # --- the process -------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """`http://127.0.0.1:PORT`, without a trailing slash."""
        if not self.port:
            raise RuntimeError("the OIDC provider has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def kid(self) -> str:
        """The id of the key the provider signs with now."""
        return self.keys[0]["kid"]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> OidcProvider:
        """Starts node and waits (30 s at most) for the provider to listen."""
        if self.running:
            raise RuntimeError("the OIDC provider is already running")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the SSO tests need node (Node.js 20 or later) on PATH")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                f"{PROVIDER_DIR / 'node_modules'} is missing: run "
                "`npm ci --prefix tests/sso/provider` (`make setup` does this)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "provider.json"
        config.write_text(
            json.dumps(
                {
                    "keys": {"keys": self.keys},
                    "clients": self.clients,
                    "users": self.users,
                    "id_token_ttl": self.id_token_ttl,
                },
                indent=2,
            )
        )
        stdout_path = self.folder / "provider.stdout.log"
        stderr_path = self.folder / "provider.stderr.log"
        # The child keeps its own descriptors; this process closes its copies at once.
        with stdout_path.open("wb") as stdout, stderr_path.open("ab") as stderr:
            process = subprocess.Popen(
                [node, str(PROVIDER_DIR / "provider.mjs"), str(self.port), str(config)],
                cwd=PROVIDER_DIR,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        self._process = process
        # Stops the process on stop(), when this object is collected, or at interpreter exit.
        self._finalizer = weakref.finalize(self, _stop_process, process)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for line in stdout_path.read_text().split("\n")[:-1]:  # whole lines only
                if line.startswith("READY "):
                    issuer = line.removeprefix("READY ").strip()
                    self.port = int(urlsplit(issuer).port or 0)
                    return self
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                reason = (
                    f"exited with status {process.returncode}"
                    if process.returncode not in (None, -15)
                    else f"did not listen within {START_TIMEOUT:.0f} s"
                )
                raise RuntimeError(
                    f"the OIDC provider (node provider.mjs) {reason}; its stderr:\n"
                    + stderr_path.read_text(errors="replace")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stops the node process (also done at interpreter exit)."""
        if self._finalizer is not None:
            self._finalizer()  # stops and reaps the process, once
            self._finalizer = None
        self._process = None

    def restart(self) -> OidcProvider:
        """Starts again on the same port, with the current keys, clients and users."""
        self.stop()
        return self.start()

    def rotate_keys(self) -> None:
        """Signs with a fresh RSA key (a new kid) from now on; the old key leaves the JWKS.
        Restarts the provider (same issuer and port)."""
        self.keys = [rsa_jwk()]
        if self.running:
            self.restart()

    def set_users(self, users: Mapping[str, dict[str, Any]]) -> None:
        """Replaces the accounts; restarts the provider when it runs."""
        self.users = dict(users)
        if self.running:
            self.restart()

    def __enter__(self) -> OidcProvider:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- documents -----------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        response = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def jwks(self) -> dict[str, Any]:
        """The public keys the provider publishes."""
        response = requests.get(self.discovery()["jwks_uri"], timeout=10)
        response.raise_for_status()
        keys: dict[str, Any] = response.json()
        return keys

    # --- a user at the provider's pages ------------------------------------------------

    def login(
        self,
        authorization_url: str,
        username: str,
        *,
        session: requests.Session | None = None,
    ) -> str:
        """Signs `username` in (and consents) at the provider's own pages, starting from an
        authorization URL, and returns the redirect to the client (its redirect_uri with
        `code`, `state` and `iss`, or with `error`) without following it.

        Raises LoginError when the provider refuses the login (an unknown user) or shows
        an error page. A `session` that already signed in may skip the forms.
        """
        http = session if session is not None else requests.Session()
        try:
            outcome = self._walk(http, "GET", authorization_url, None, username=username)
        finally:
            if session is None:
                http.close()
        if isinstance(outcome, requests.Response):
            raise LoginError(
                f"the sign-in of {username!r} ended at {outcome.url} instead of a redirect "
                f"to the client: {self._page_text(outcome)}"
            )
        return outcome

    def approve_device(
        self,
        verification_uri: str,
        user_code: str,
        username: str,
        *,
        session: requests.Session | None = None,
    ) -> None:
        """Enters `user_code` at the device verification page (`verification_uri`, or
        `verification_uri_complete`, which carries the code), signs `username` in and
        confirms, as the user would in a browser. Raises LoginError when it did not end at
        the provider's success page."""
        http = session if session is not None else requests.Session()
        try:
            outcome = self._walk(
                http, "GET", verification_uri, None, username=username, user_code=user_code
            )
        finally:
            if session is None:
                http.close()
        if isinstance(outcome, str):
            raise LoginError(f"the device approval left the provider for {outcome}")
        text = self._page_text(outcome)
        if outcome.status_code != 200 or "Sign-in Success" not in text:
            raise LoginError(
                f"the device approval of {user_code!r} for {username!r} did not succeed "
                f"({outcome.status_code} at {outcome.url}): {text}"
            )

    def _walk(
        self,
        http: requests.Session,
        method: str,
        url: str,
        data: dict[str, str] | None,
        *,
        username: str,
        user_code: str | None = None,
    ) -> str | requests.Response:
        """Follows redirects within the provider and fills in its forms. Returns the first
        redirect away from the provider, or the first page without a form."""
        issuer = urlsplit(self.issuer)
        logins = code_entries = 0
        for _ in range(_MAX_STEPS):
            response = http.request(method, url, data=data, allow_redirects=False, timeout=10)
            if response.is_redirect:
                target = urljoin(url, response.headers["Location"])
                if urlsplit(target)[:2] != issuer[:2]:
                    return target
                method, url, data = "GET", target, None
                continue
            page = _parse(response.text)
            forms = [form for form in page.forms if form.action]
            if not forms or response.status_code >= 400:
                return response
            form = forms[0]
            fields: dict[str, str] = {}
            for name, value, kind in form.fields:
                if kind in ("submit", "button", "image"):
                    continue
                fields[name] = value
            if "login" in fields:  # the sign-in form
                logins += 1
                if logins > 1:
                    known = ", ".join(sorted(self.users)) or "none"
                    raise LoginError(
                        f"the OIDC provider refused the login {username!r} "
                        f"({' '.join(page.text)}; known users: {known})"
                    )
                fields["login"] = username
                fields["password"] = PASSWORD
            if "user_code" in fields and "confirm" not in fields:  # entering the code
                code_entries += 1
                if code_entries > 1:
                    raise LoginError(
                        f"the device approval of {user_code!r} for {username!r} did not "
                        f"succeed: {' '.join(page.text)}"
                    )
                if not fields["user_code"]:
                    if user_code is None:
                        raise LoginError(f"the provider asks for a device user code at {url}")
                    fields["user_code"] = user_code
            method = form.method.upper() if form.method else "GET"
            url = urljoin(response.url, form.action)
            data = fields
        raise LoginError(f"no redirect to the client after {_MAX_STEPS} steps (last: {url})")

    @staticmethod
    def _page_text(response: requests.Response) -> str:
        if "html" in response.headers.get("Content-Type", ""):
            return " ".join(_parse(response.text).text)
        return response.text[:2000]

    # --- a client ------------------------------------------------------------------------

    def client(self, client_id: str) -> dict[str, Any]:
        for client in self.clients:
            if client["client_id"] == client_id:
                return client
        raise KeyError(client_id)

    def token_request(
        self, client_id: str, client_secret: str, form: dict[str, str]
    ) -> requests.Response:
        """POSTs `form` to the token endpoint, authenticating as the client the way it is
        registered (client_secret_basic unless it says client_secret_post)."""
        headers = {}
        body = dict(form)
        method = self.client(client_id).get("token_endpoint_auth_method", "client_secret_basic")
        if method == "client_secret_post":
            body.update(client_id=client_id, client_secret=client_secret)
        else:
            headers["Authorization"] = _basic_auth(client_id, client_secret)
        return requests.post(
            self.discovery()["token_endpoint"], data=body, headers=headers, timeout=10
        )

    def authorization_url(
        self,
        client_id: str,
        *,
        redirect_uri: str,
        state: str,
        code_challenge: str,
        nonce: str = "n",
        scope: str = "openid profile email groups",
    ) -> str:
        """An authorization code request (PKCE S256) at the provider's authorization
        endpoint, as a client would redirect a browser to."""
        query = urlencode(
            {
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.discovery()['authorization_endpoint']}?{query}"

    def id_token(
        self,
        client_id: str,
        client_secret: str,
        username: str,
        *,
        redirect_uri: str,
        nonce: str = "n",
        scope: str = "openid profile email groups",
    ) -> str:
        """An ID token for `username`, issued to the client by a complete authorization
        code flow with PKCE that this fixture runs itself (the redirect is not followed;
        nothing needs to listen at `redirect_uri`)."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        authorization = self.authorization_url(
            client_id,
            redirect_uri=redirect_uri,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            scope=scope,
        )
        redirect = self.login(authorization, username)
        params = {k: v[0] for k, v in parse_qs(urlsplit(redirect).query).items()}
        if "code" not in params:
            raise LoginError(f"the authorization failed: {redirect}")
        if params.get("state") != state:
            raise LoginError(f"the authorization response has another state: {redirect}")
        response = self.token_request(
            client_id,
            client_secret,
            {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
        )
        if response.status_code != 200:
            raise LoginError(f"the token request failed ({response.status_code}): {response.text}")
        token: str = response.json()["id_token"]
        return token
