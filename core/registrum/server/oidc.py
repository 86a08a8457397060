"""OpenID Connect: the identity provider the server signs people in through, the issuers it
trusts for token exchange, and the role map from the provider's groups to roles.

What the provider says is checked here: its discovery document (its `issuer` must be the
one configured), and every ID token's signature against the provider's JWKS (fetched again
when a token names a key it does not hold: the provider rotated its keys), issuer, audience,
expiry, issue time and, for a browser or CLI sign-in, the nonce the server sent.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import requests

from registrum.entities import ROLES
from registrum.errors import RegistrumError
from registrum.store.governance.identity import GroupGrants

# Asymmetric signatures only: `none` and the HMAC ones (keyed with the client secret) never.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
TIMEOUT = 10.0  # seconds the provider has to answer
JWKS_MIN_REFRESH = 5.0  # seconds before the JWKS is fetched again for a key still missing
DISCOVERY_TTL = 3600.0


class OidcError(Exception):
    """A sign-in or a token the provider (or the person) got wrong: shown to them, 4xx."""


@dataclass(frozen=True)
class RoleMap:
    """Groups to roles, from `--oidc-role-map FILE`:

    ml-platform: server-admin
    vision-team:
      vision: editor
      "*": viewer
    """

    admins: frozenset[str] = frozenset()
    roles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str = "the role map") -> RoleMap:
        """Raises ValueError, naming the group, for anything but the form above."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must map group names to roles, got {type(data).__name__}")
        admins: set[str] = set()
        roles: dict[str, dict[str, str]] = {}
        for group, value in data.items():
            if not isinstance(group, str) or not group:
                raise ValueError(f"{where}: group names must be strings, got {group!r}")
            if value == "server-admin":
                admins.add(group)
                continue
            if not isinstance(value, Mapping) or not value:
                raise ValueError(
                    f"{where}: group {group!r} must map to server-admin or to roles per "
                    f"project (e.g. {{vision: editor, '*': viewer}}), got {value!r}"
                )
            for project, role in value.items():
                if not isinstance(project, str) or not project:
                    raise ValueError(f"{where}: group {group!r} names a project {project!r}")
                if role not in ROLES:
                    raise ValueError(
                        f"{where}: group {group!r} gives {role!r} on {project!r}; roles are "
                        f"{', '.join(ROLES)}"
                    )
            roles[group] = {str(p): str(r) for p, r in value.items()}
        return cls(frozenset(admins), roles)

    @classmethod
    def load(cls, path: str | Path) -> RoleMap:
        import yaml

        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the role map {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"the role map {path} is not valid YAML: {exc}") from None
        return cls.parse(data, f"the role map {path}")

    def grants(self, groups: list[str]) -> GroupGrants:
        """What these groups give: server admin, and the highest role per project, with the
        groups that gave it as its source."""
        held = [g for g in groups if g in self.roles]
        best: dict[str, tuple[str, list[str]]] = {}
        for group in held:
            for project, role in self.roles[group].items():
                found = best.get(project)
                if found is None or ROLES.index(role) > ROLES.index(found[0]):
                    best[project] = (role, [group])
                elif found[0] == role:
                    found[1].append(group)
        source = {p: "groups: " + ", ".join(sorted(gs)) for p, (_, gs) in best.items()}
        every = best.pop("*", None)
        return GroupGrants(
            server_admin=any(g in self.admins for g in groups),
            projects={p: (role, source[p]) for p, (role, _) in best.items()},
            every=None if every is None else (every[0], source["*"]),
        )


@dataclass(frozen=True)
class OidcSettings:
    """The identity provider people sign in through (`registrum server --oidc-issuer`)."""

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)  # never in logs or reprs
    scopes: str = "openid profile email groups"
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    role_map: RoleMap = field(default_factory=RoleMap)
    provider_name: str | None = None
    session_hours: float = 12.0
    login_token_days: float = 30.0
    leeway: float = 30.0  # seconds of clock difference allowed on exp and iat

    def __post_init__(self) -> None:
        check_issuer(self.issuer, "--oidc-issuer")
        if not self.client_id:
            raise ValueError("--oidc-client-id must not be empty")
        if "openid" not in self.scopes.split():
            raise ValueError(f"--oidc-scopes must include openid, got {self.scopes!r}")
        if not 0 < self.session_hours < float("inf"):
            raise ValueError("the session length must be above 0 hours")

    @property
    def label(self) -> str:
        """The provider's name on the sign-in button."""
        return self.provider_name or urlparse(self.issuer).hostname or self.issuer


@dataclass(frozen=True)
class TrustRule:
    """An issuer whose ID tokens may be exchanged for a short-lived token of `user`, when
    their subject matches `subject` (a glob, `repo:acme/vision:*`) and their audience
    holds `audience`."""

    issuer: str
    subject: str
    user: str
    audience: str = "registrum"
    minutes: float = 60.0

    def __post_init__(self) -> None:
        check_issuer(self.issuer, "--trust-issuer")
        if not self.subject:
            raise ValueError("--trust-subject must not be empty")
        if not self.user:
            raise ValueError("--as must name a service account")

    def admits(self, subject: str) -> bool:
        return fnmatch.fnmatchcase(subject, self.subject)


def check_issuer(issuer: str, option: str) -> None:
    parsed = urlparse(issuer)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ValueError(f"{option} must be an https:// URL, got {issuer!r}")
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{option} must be an https:// URL (http only on loopback): {issuer}")
    if parsed.query or parsed.fragment:
        raise ValueError(f"{option} must not have a query or fragment: {issuer}")


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Provider:
    """One OpenID provider (or trusted issuer): its discovery document and keys, cached."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer.rstrip("/")
        self._lock = threading.RLock()  # `_key` reads the metadata while holding it
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, Any] = {}
        self._missed: dict[str, float] = {}
        self.http = requests.Session()

    # -- what the provider publishes -----------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > DISCOVERY_TTL:
                url = f"{self.issuer}/.well-known/openid-configuration"
                data = self._get_json(url, "discovery document")
                if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                    raise OidcError(
                        f"the discovery document at {url} names issuer "
                        f"{data.get('issuer')!r}, not {self.issuer!r}"
                    )
                for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(data.get(needed), str):
                        raise OidcError(f"the discovery document at {url} has no {needed}")
                self._metadata, self._metadata_at = data, time.monotonic()
            return self._metadata

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderDown(
                f"the identity provider's {what} ({url}) is unreachable: {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ProviderDown(f"the identity provider's {what} ({url}) is not a JSON object")
        return data

    def _key(self, kid: str | None, alg: str) -> Any:
        import jwt

        with self._lock:
            found = self._find_key(kid, alg)
            # A key not held: the provider rotated its keys, so fetch them again; a key still
            # missing after that is not fetched for again for a few seconds (a flood of
            # tokens naming made-up keys must not become a flood of fetches).
            missed = self._missed.get(kid or "")
            if found is None and (missed is None or time.monotonic() - missed >= JWKS_MIN_REFRESH):
                url = str(self.metadata()["jwks_uri"])
                keys: dict[str, Any] = {}
                for entry in self._get_json(url, "key set").get("keys", []):
                    if entry.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[entry.get("kid") or f"#{len(keys)}"] = jwt.PyJWK(entry)
                    except jwt.PyJWTError:
                        continue  # a key of a type this server does not use
                self._keys = keys
                found = self._find_key(kid, alg)
                if found is None:
                    if len(self._missed) > 1000:
                        self._missed.clear()
                    self._missed[kid or ""] = time.monotonic()
        if found is None:
            raise OidcError(f"the ID token is signed with a key ({kid}) the provider does not list")
        return found

    def _find_key(self, kid: str | None, alg: str) -> Any:
        if kid is not None:
            return self._keys.get(kid)
        usable = [k for k in self._keys.values() if getattr(k, "algorithm_name", alg) == alg]
        return usable[0] if len(usable) == 1 else None

    # -- checking an ID token ------------------------------------------------------------

    def verify(
        self,
        token: str,
        *,
        audience: str,
        nonce: str | None = None,
        leeway: float = 30.0,
    ) -> dict[str, Any]:
        """The claims of an ID token, once its signature, issuer, audience, expiry, issue
        time and (when given) nonce hold; `OidcError` saying which does not."""
        import jwt

        self.metadata()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcError("the ID token is not a signed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OidcError(f"the ID token's algorithm {alg!r} is not accepted")
        key = self._key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                leeway=leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcError("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise OidcError(
                f"the ID token is not meant for this server (audience {audience})"
            ) from None
        except jwt.InvalidIssuerError:
            raise OidcError(f"the ID token was not issued by {self.issuer}") from None
        except jwt.ImmatureSignatureError:
            raise OidcError("the ID token is not valid yet (check the clocks)") from None
        except jwt.InvalidSignatureError:
            raise OidcError("the ID token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is not valid: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") not in (None, audience):
            raise OidcError("the ID token was issued to another client (azp)")
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the ID token's nonce is not the one this sign-in sent")
        return claims

    # -- the flows -----------------------------------------------------------------------

    def authorization_url(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: str,
        state: str,
        nonce: str,
        challenge: str,
    ) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(self.metadata()["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def token_request(
        self, form: dict[str, str], *, client_id: str, client_secret: str | None
    ) -> dict[str, Any]:
        """POSTs `form` to the token endpoint, as the client; the answer, or OidcError with
        the provider's `error` (`authorization_pending` and the like are in `.error`)."""
        endpoint = str(self.metadata()["token_endpoint"])
        response, body = self._post(endpoint, form, "token", client_id, client_secret)
        if response.status_code >= 400 or "error" in body:
            error = str(body.get("error", response.status_code))
            described = body.get("error_description")
            raise TokenError(
                error,
                f"the identity provider refused: {error}"
                + (f" ({described})" if described else ""),
            )
        return dict(body)

    def device_authorization(
        self, *, client_id: str, client_secret: str | None, scopes: str
    ) -> dict[str, Any] | None:
        """Starts a device sign-in; None when the provider has no device flow."""
        endpoint = self.metadata().get("device_authorization_endpoint")
        if not isinstance(endpoint, str):
            return None
        response, body = self._post(endpoint, {"scope": scopes}, "device", client_id, client_secret)
        if response.status_code >= 400 or "device_code" not in body:
            return None  # e.g. this client may not use the device flow: the CLI falls back
        return body

    def _post(
        self,
        endpoint: str,
        form: dict[str, str],
        what: str,
        client_id: str,
        client_secret: str | None,
    ) -> tuple[requests.Response, dict[str, Any]]:
        """POSTs `form` to one of the provider's endpoints as the client (its secret in
        Basic auth where the provider takes it, else in the form); the answer and its JSON
        object."""
        methods = self.metadata().get(
            "token_endpoint_auth_methods_supported", ["client_secret_basic"]
        )
        auth = None
        form = {**form, "client_id": client_id}
        if client_secret is not None:
            if "client_secret_basic" in methods:
                auth = (client_id, client_secret)
            else:
                form["client_secret"] = client_secret
        try:
            response = self.http.post(endpoint, data=form, auth=auth, timeout=TIMEOUT)
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderDown(f"the identity provider's {what} endpoint failed: {exc}") from None
        if not isinstance(body, dict):
            raise ProviderDown(f"the identity provider's {what} endpoint answered no JSON object")
        return response, body


class ProviderDown(OidcError, RegistrumError):
    """The provider cannot be reached or answers nonsense: 502."""

    status = 502
    code = "identity_provider_unavailable"


class TokenError(OidcError):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def username(claims: Mapping[str, Any], claim: str) -> str:
    """The user name an ID token gives: the configured claim, else `email`."""
    for name in (claim, "email"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise OidcError(f"the ID token has no {claim} or email claim to name the user by")


def groups_of(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The groups an ID token gives (a list, or one string)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(g) for g in value if isinstance(g, (str, int))]
    return []
