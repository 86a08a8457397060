"""Signing in through the identity provider (`/auth/...`): the browser's authorization code
flow with PKCE, `registrum login` (the device flow, or a loopback redirect through the same
callback), signing out, and the exchange of a trusted issuer's ID token for a short-lived
Registrum token (workload identity: CI jobs without stored secrets).

These routes need no token: each checks what it is sent. A sign-in's `state` is kept
server-side (`login_requests`, shared by every replica) and taken once, so a replayed
callback finds nothing.
"""

from __future__ import annotations

import functools
import html
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from registrum.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    RegistrumError,
    Unauthorized,
)
from registrum.server.deps import SESSION_COOKIE, require_csrf
from registrum.server.oidc import (
    OidcError,
    OidcSettings,
    Provider,
    ProviderDown,
    TokenError,
    TrustRule,
    groups_of,
    pkce_pair,
    s256,
    username,
)
from registrum.server.responses import JSON
from registrum.store import Store

router = APIRouter(tags=["sign-in"])

_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OAUTH_ERROR = {
    "description": "An OAuth error (RFC 6749 §5.2): `error` says which, `error_description` "
    "(also as `detail`) why.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "error_description"],
                "properties": {
                    "error": {"type": "string"},
                    "error_description": {"type": "string"},
                    "detail": {"type": "string"},
                },
            }
        }
    },
}
_TOKEN = {
    "description": "A Registrum API token (`access_token`, used as a bearer token).",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["access_token", "token_type", "expires_in", "user"],
                "properties": {
                    "access_token": {"type": "string"},
                    "token_type": {"type": "string", "enum": ["Bearer"]},
                    "issued_token_type": {"type": "string"},
                    "expires_in": {"type": "integer"},
                    "user": {"type": "string"},
                    "token_id": {"type": "integer"},
                },
            }
        }
    },
}
_NO_PROVIDER = {"description": "This server has no identity provider.", **_ERROR}
_PROVIDER_DOWN = {"description": "The identity provider cannot be reached.", **_ERROR}
_OAUTH_ANSWERS: dict[int | str, Any] = {
    200: _TOKEN,
    400: _OAUTH_ERROR,
    401: _OAUTH_ERROR,
    404: _OAUTH_ERROR,
    502: _OAUTH_ERROR,
}


def _fields(
    *required: str, optional: tuple[str, ...] = (), media: tuple[str, ...] = ("application/json",)
) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its own: these string fields."""
    schema = {
        "type": "object",
        "required": list(required),
        "properties": {name: {"type": "string"} for name in (*required, *optional)},
    }
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}}}


_OAUTH_CODES = {401: "invalid_grant", 403: "invalid_grant", 502: "temporarily_unavailable"}


def oauth_errors(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint, answering its failures as OAuth errors (the token endpoints' clients
    read `error`, as from any authorization server)."""

    @functools.wraps(endpoint)
    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RegistrumError as exc:
            code = _OAUTH_CODES.get(exc.status, "invalid_request")
            return _oauth_error(exc.status, code, exc.message)

    return answer


LOGIN_TTL = 600.0  # seconds a sign-in may take at the provider
SIGNIN_COOKIE = "registrum_signin"  # the `state` of the sign-in this browser started
CLI_CODE_TTL = 120.0  # seconds the CLI has to collect its token after the redirect
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def _oidc(request: Request) -> tuple[OidcSettings, Provider]:
    settings: OidcSettings | None = request.app.state.settings.oidc
    if settings is None or not request.app.state.settings.auth:
        raise NotFound(
            "this server has no identity provider: start it with --auth --oidc-issuer URL "
            "--oidc-client-id ID, or sign in with an API token"
        )
    return settings, provider_for(request, settings.issuer)


def provider_for(request: Request, issuer: str) -> Provider:
    """The cached Provider of `issuer` (its discovery document and keys are kept)."""
    providers: dict[str, Provider] = request.app.state.oidc_providers
    found = providers.get(issuer)
    if found is None:
        found = providers[issuer] = Provider(issuer)
    return found


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/auth/oidc/callback"


@router.get("/auth/providers")
def providers(request: Request) -> JSON:
    """How this server signs people in: `oidc` names the identity provider (None without
    one); an API token always works beside it."""
    settings = request.app.state.settings
    oidc = settings.oidc if settings.auth else None
    return JSON(
        {
            "auth": bool(settings.auth),
            "oidc": None
            if oidc is None
            else {"name": oidc.label, "issuer": oidc.issuer, "login_url": "/auth/oidc/login"},
        }
    )


@router.get(
    "/auth/oidc/login",
    status_code=303,
    responses={
        303: {"description": "To the identity provider's sign-in page."},
        404: _NO_PROVIDER,
        502: {"description": "The identity provider cannot be reached.", **_PAGE},
    },
)
async def login(
    request: Request,
    next: str = "#/",
    cli_port: int | None = None,
    cli_state: str | None = None,
    cli_challenge: str | None = None,
) -> Response:
    """Sends the browser to the identity provider. `next`: the UI page to come back to.
    `registrum login` adds `cli_port`, `cli_state` and `cli_challenge`: the browser then
    comes back to the CLI's loopback port with a one-time code instead of a session."""
    oidc, provider = _oidc(request)
    data: dict[str, Any] = {"next": _local_page(next), "redirect_uri": _redirect_uri(request)}
    if cli_port is not None or cli_state is not None or cli_challenge is not None:
        if cli_port is None or not 1024 <= cli_port <= 65535:
            raise InvalidArgument("cli_port must be a port from 1024 to 65535")
        if not cli_state or len(cli_state) > 256 or not cli_challenge or len(cli_challenge) > 128:
            raise InvalidArgument("a CLI sign-in needs cli_state and cli_challenge")
        data["cli"] = {"port": cli_port, "state": cli_state, "challenge": cli_challenge}
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    data.update(nonce=nonce, verifier=verifier)
    try:
        url = await run_in_threadpool(
            provider.authorization_url,
            client_id=oidc.client_id,
            redirect_uri=data["redirect_uri"],
            scopes=oidc.scopes,
            state=state,
            nonce=nonce,
            challenge=challenge,
        )
    except OidcError as exc:
        return _page(502, "The identity provider cannot be reached", str(exc))
    await run_in_threadpool(_store(request).start_login, state, "browser", data, ttl=LOGIN_TTL)
    response = RedirectResponse(url, status_code=303)
    # The sign-in belongs to this browser: a callback brought to another one (a link that
    # would sign its victim in as someone else) is refused.
    response.set_cookie(
        SIGNIN_COOKIE,
        state,
        max_age=int(LOGIN_TTL),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/auth/oidc",
    )
    return response


def _local_page(next: str) -> str:
    """`next` when it is a page of this UI (`#/...`), else the UI's first page: a sign-in
    never sends the browser elsewhere."""
    return next if next.startswith("#/") and len(next) <= 2048 else "#/"


@router.get(
    "/auth/oidc/callback",
    status_code=303,
    responses={
        303: {"description": "Signed in: to the UI (a session cookie), or to `registrum login`."},
        400: {"description": "An unknown or used sign-in, or the provider's error.", **_PAGE},
        401: {"description": "The ID token was refused; the page says why.", **_PAGE},
        403: {"description": "A disabled user, a service account, a taken name.", **_PAGE},
        404: _NO_PROVIDER,
        502: {"description": "The identity provider cannot be reached.", **_PAGE},
    },
)
async def callback(
    request: Request,
    state: str = "",
    code: str = "",
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Where the provider sends the browser back: the code is exchanged (with the PKCE
    verifier and the client secret), the ID token checked, the user signed in."""
    oidc, provider = _oidc(request)
    store = _store(request)
    data = await run_in_threadpool(store.take_login, state, "browser") if state else None
    if data is None:
        return _page(
            400,
            "This sign-in is unknown or already used",
            "Its link was used before, or it took longer than 10 minutes. Sign in again.",
        )
    if not secrets.compare_digest(request.cookies.get(SIGNIN_COOKIE, ""), state):
        return _page(
            400,
            "This sign-in was started in another browser",
            "Sign in again from this browser.",
        )
    if error is not None:
        return _page(400, "The identity provider did not sign you in", error_description or error)
    if not code:
        return _page(400, "The identity provider sent no code", "Sign in again.")
    try:
        user = await run_in_threadpool(_sign_in_with_code, store, oidc, provider, code, data)
    except ProviderDown as exc:
        return _page(502, "The identity provider cannot be reached", str(exc))
    except OidcError as exc:
        return _page(401, "The sign-in was refused", str(exc))
    except (Unauthorized, Forbidden, Conflict) as exc:
        return _page(403, "You cannot sign in here", str(exc))
    cli = data.get("cli")
    if cli is not None:
        one_time = secrets.token_urlsafe(32)
        await run_in_threadpool(
            store.start_login,
            one_time,
            "cli-code",
            {"user": user, "challenge": cli["challenge"]},
            ttl=CLI_CODE_TTL,
        )
        query = urlencode({"code": one_time, "state": cli["state"]})
        back = RedirectResponse(f"http://127.0.0.1:{cli['port']}/?{query}", status_code=303)
        back.delete_cookie(SIGNIN_COOKIE, path="/auth/oidc")
        return back
    session = await run_in_threadpool(store.create_session, user, ttl=oidc.session_hours * 3600)
    response = RedirectResponse("/" + data["next"], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(oidc.session_hours * 3600),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/auth/oidc")
    return response


def _sign_in_with_code(
    store: Store, oidc: OidcSettings, provider: Provider, code: str, data: dict[str, Any]
) -> str:
    answer = provider.token_request(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": data["redirect_uri"],
            "code_verifier": data["verifier"],
        },
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
    )
    return _sign_in(store, oidc, provider, answer, nonce=data["nonce"])


def _sign_in(
    store: Store,
    oidc: OidcSettings,
    provider: Provider,
    answer: dict[str, Any],
    *,
    nonce: str | None,
) -> str:
    """Signs in the user of a token answer's ID token; their name."""
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise OidcError("the identity provider sent no ID token (is 'openid' in the scopes?)")
    claims = provider.verify(id_token, audience=oidc.client_id, nonce=nonce, leeway=oidc.leeway)
    groups = groups_of(claims, oidc.groups_claim)
    email = claims.get("email")
    user = store.sign_in_external(
        issuer=provider.issuer,
        subject=str(claims["sub"]),
        name=username(claims, oidc.username_claim),
        email=email if isinstance(email, str) else None,
        groups=groups,
        grants=oidc.role_map.grants(groups),
    )
    return user.name


@router.post(
    "/auth/signout",
    status_code=204,
    responses={403: {"description": "The session's X-CSRF-Token is missing.", **_ERROR}},
)
async def signout(request: Request) -> Response:
    """Ends the browser session (its CSRF token must come along)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        require_csrf(request, session)
        await run_in_threadpool(_store(request).end_session, session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- registrum login ------------------------------------------------------------------------


@router.post("/auth/device", responses={404: _NO_PROVIDER, 502: _PROVIDER_DOWN})
async def device_start(request: Request) -> JSON:
    """Starts a device sign-in for `registrum login`: the person opens `verification_uri`
    and enters `user_code`; the CLI polls `/auth/device/token` with `login_id`. 404 when
    the provider offers no device flow to this server (the CLI then uses a browser)."""
    oidc, provider = _oidc(request)
    answer = await run_in_threadpool(
        provider.device_authorization,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        scopes=oidc.scopes,
    )
    if answer is None:
        raise NotFound("the identity provider offers no device sign-in to this server")
    login_id = secrets.token_urlsafe(32)
    expires_in = float(answer.get("expires_in", LOGIN_TTL))
    interval = float(answer.get("interval", 5))
    await run_in_threadpool(
        _store(request).start_login,
        login_id,
        "device",
        {"device_code": answer["device_code"], "interval": interval},
        ttl=min(expires_in, 1800.0),
    )
    return JSON(
        {
            "login_id": login_id,
            "user_code": answer.get("user_code"),
            "verification_uri": answer.get("verification_uri"),
            "verification_uri_complete": answer.get("verification_uri_complete"),
            "expires_in": expires_in,
            "interval": interval,
        }
    )


@router.post("/auth/device/token", responses=_OAUTH_ANSWERS, openapi_extra=_fields("login_id"))
@oauth_errors
async def device_token(request: Request) -> Response:
    """The token of a device sign-in once the person approved it; until then 400 with
    `error`: `authorization_pending` (ask again after `interval`) or `slow_down`."""
    oidc, provider = _oidc(request)
    body = await _json(request)
    login_id = body.get("login_id")
    if not isinstance(login_id, str) or not login_id:
        raise InvalidArgument("send the login_id that /auth/device answered")
    store = _store(request)
    data = await run_in_threadpool(store.peek_login, login_id, "device")
    if data is None:
        return _oauth_error(400, "expired_token", "this sign-in expired or was used: start again")
    try:
        answer = await run_in_threadpool(
            provider.token_request,
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": data["device_code"],
            },
            client_id=oidc.client_id,
            client_secret=oidc.client_secret,
        )
    except TokenError as exc:
        if exc.error in ("authorization_pending", "slow_down"):
            return _oauth_error(400, exc.error, "waiting for you to approve at the provider")
        await run_in_threadpool(store.take_login, login_id, "device")
        return _oauth_error(400, exc.error, str(exc))
    if await run_in_threadpool(store.take_login, login_id, "device") is None:
        return _oauth_error(400, "expired_token", "this sign-in was used: start again")
    return await _issue_login_token(request, oidc, provider, answer)


async def _issue_login_token(
    request: Request, oidc: OidcSettings, provider: Provider, answer: dict[str, Any]
) -> Response:
    store = _store(request)
    try:
        user = await run_in_threadpool(_sign_in, store, oidc, provider, answer, nonce=None)
    except OidcError as exc:
        return _oauth_error(401, "invalid_grant", str(exc))
    return await _login_token(store, oidc, user)


async def _login_token(store: Store, oidc: OidcSettings, user: str) -> JSON:
    """The token `registrum login` keeps: `--oidc` settings' days long."""
    return await _token_answer(store, user, "registrum login", oidc.login_token_days * 86400)


async def _token_answer(
    store: Store, user: str, name: str, seconds: float, *, service: bool = False
) -> JSON:
    token = await run_in_threadpool(
        functools.partial(
            store.issue_token, user, name=name, expires_at=time.time() + seconds, service=service
        )
    )
    return JSON(
        {
            "access_token": token.token,
            "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "expires_in": int(seconds),
            "user": user,
            "token_id": token.id,
        }
    )


@router.post(
    "/auth/cli/token", responses=_OAUTH_ANSWERS, openapi_extra=_fields("code", "code_verifier")
)
@oauth_errors
async def cli_token(request: Request) -> Response:
    """The token of a loopback sign-in: the one-time `code` the browser brought to the
    CLI, with the `code_verifier` whose S256 the CLI sent as `cli_challenge`."""
    oidc, _ = _oidc(request)
    body = await _json(request)
    code, verifier = body.get("code"), body.get("code_verifier")
    if not isinstance(code, str) or not isinstance(verifier, str) or not code or not verifier:
        raise InvalidArgument("send the code and the code_verifier")
    store = _store(request)
    data = await run_in_threadpool(store.take_login, code, "cli-code")
    if data is None or not secrets.compare_digest(s256(verifier), data["challenge"]):
        return _oauth_error(400, "invalid_grant", "this code is unknown, used, or not yours")
    return await _login_token(store, oidc, data["user"])


# -- workload identity -----------------------------------------------------------------------


@router.post(
    "/auth/token-exchange",
    responses=_OAUTH_ANSWERS,
    openapi_extra=_fields(
        "grant_type",
        "subject_token",
        optional=("subject_token_type",),
        media=("application/x-www-form-urlencoded", "application/json"),
    ),
)
@oauth_errors
async def token_exchange(request: Request) -> Response:
    """RFC 8693 token exchange: an ID token from a trusted issuer (`--trust-issuer`), whose
    subject matches `--trust-subject`, becomes a short-lived token of the `--as` service
    account. Form or JSON fields: `grant_type`, `subject_token`, `subject_token_type`."""
    settings = request.app.state.settings
    if not settings.auth or not settings.trust:
        raise NotFound("this server trusts no issuer for token exchange (--trust-issuer)")
    body = await _form_or_json(request)
    if body.get("grant_type") != TOKEN_EXCHANGE:
        return _oauth_error(400, "unsupported_grant_type", f"grant_type must be {TOKEN_EXCHANGE}")
    if body.get("subject_token_type", ID_TOKEN_TYPE) not in (ID_TOKEN_TYPE, JWT_TYPE):
        return _oauth_error(400, "invalid_request", f"subject_token_type must be {ID_TOKEN_TYPE}")
    token = body.get("subject_token")
    if not isinstance(token, str) or not token:
        return _oauth_error(400, "invalid_request", "send the ID token as subject_token")
    try:
        issuer = _unverified_issuer(token)
    except OidcError as exc:
        return _oauth_error(400, "invalid_request", str(exc))
    rules: list[TrustRule] = [r for r in settings.trust if r.issuer.rstrip("/") == issuer]
    if not rules:
        return _oauth_error(401, "invalid_grant", f"issuer {issuer!r} is not trusted here")
    refused = "no trust rule admits this token"
    for rule in rules:
        provider = provider_for(request, rule.issuer)
        try:
            claims = await run_in_threadpool(provider.verify, token, audience=rule.audience)
        except ProviderDown:
            raise  # 502, not a refusal of this token
        except OidcError as exc:
            refused = str(exc)
            continue
        if not rule.admits(str(claims["sub"])):
            refused = f"subject {claims['sub']!r} does not match {rule.subject!r}"
            continue
        store = _store(request)
        try:
            return await _token_answer(
                store, rule.user, "token exchange", rule.minutes * 60, service=True
            )
        except RegistrumError as exc:
            return _oauth_error(401, "invalid_grant", str(exc))
    return _oauth_error(401, "invalid_grant", refused)


def _unverified_issuer(token: str) -> str:
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OidcError("subject_token is not a JWT") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise OidcError("subject_token has no issuer")
    return issuer.rstrip("/")


# -- helpers ---------------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidArgument("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    return body


async def _form_or_json(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        return await _json(request)
    body = await request.body()
    if len(body) > 64 * 1024:
        raise InvalidArgument("the form is larger than 64 KiB")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidArgument("the form must be UTF-8, application/x-www-form-urlencoded") from None
    return {k: v[0] for k, v in parse_qs(text).items()}


def _oauth_error(status: int, error: str, description: str) -> JSON:
    """An OAuth error answer (RFC 6749 §5.2), with `detail` as every API error has."""
    return JSON(
        {"error": error, "error_description": description, "detail": description},
        status_code=status,
    )


def _page(status: int, title: str, message: str) -> HTMLResponse:
    """A small page for the browser, when a sign-in cannot go on."""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)} · Registrum</title>"
        '<link rel=stylesheet href="/ui/style.css">'
        f'<main class="signin-error"><h1>{html.escape(title)}</h1>'
        f"<p id=reason>{html.escape(message)}</p>"
        '<p><a href="/#/signin">Sign in again</a></p></main></html>'
    )
    return HTMLResponse(body, status_code=status)
