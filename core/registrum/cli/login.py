"""`registrum login` and `registrum logout`: the CLI signs in through the server's identity
provider and keeps the token it gets in the user's config (mode 0600).

The device flow when the provider offers it (open a page anywhere, type a code); else the
browser comes back through the server's own callback to a one-time port on 127.0.0.1 with
a one-time code, which only this process (holding the PKCE verifier) can turn into a token.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import os
import secrets
import sys
import threading
import time
import webbrowser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from registrum.cli._common import add_store, when
from registrum.client.credentials import (
    credentials_path,
    forget_login,
    server_key,
    store_login,
    stored_login,
)
from registrum.errors import InvalidArgument, RegistrumError, Unauthorized

SERVER_HELP = "the server's URL, http(s)://host:port (default REGISTRUM_URL)"
TIMEOUT = 30.0
WAIT = 600.0  # seconds a person has to finish signing in


def _server(args: argparse.Namespace) -> str:
    url = args.store or os.environ.get("REGISTRUM_URL") or ""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(
            "name the server: registrum login --server https://registrum.example.com "
            "(or set REGISTRUM_URL)"
        )
    return server_key(url)


def _body(response: requests.Response) -> dict[str, Any]:
    """The JSON object a response holds; {} for anything else (a proxy's error page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _answer(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a success; a RegistrumError saying what the server refused."""
    body = _body(response)
    if response.status_code >= 400:
        error = body.get("error")
        message = (
            body.get("error_description")
            or (error.get("message") if isinstance(error, dict) else None)
            or body.get("detail")
            or response.reason
        )
        raise RegistrumError(f"the server refused ({response.status_code}): {message}")
    return body


def _login(args: argparse.Namespace) -> int:
    server = _server(args)
    web = requests.Session()
    try:
        providers = _answer(web.get(f"{server}/auth/providers", timeout=TIMEOUT))
    except requests.RequestException as exc:
        raise RegistrumError(f"cannot reach {server}: {exc}") from None
    if not providers.get("oidc"):
        raise RegistrumError(
            f"{server} signs nobody in through an identity provider: use an API token "
            "(REGISTRUM_TOKEN), made with `registrum tokens create`"
        )
    name = providers["oidc"]["name"]
    answer = None if args.browser else _device_login(web, server, name)
    if answer is None:
        answer = _loopback_login(web, server, name, open_browser=not args.no_open)
    login = {
        "token": answer["access_token"],
        "user": answer.get("user"),
        "token_id": answer.get("token_id"),
        "expires_at": time.time() + float(answer.get("expires_in", 0)),
    }
    path = store_login(server, login)
    print(
        f"signed in to {server} as {login['user']}; the token (expires "
        f"{when(login['expires_at'])}) is in {path}"
    )
    if server_key(os.environ.get("REGISTRUM_URL", "")) != server:
        print(f"use this server: export REGISTRUM_URL={server}")
    return 0


def _device_login(web: requests.Session, server: str, name: str) -> dict[str, Any] | None:
    """The device flow; None when the provider offers none to the server."""
    response = web.post(f"{server}/auth/device", timeout=TIMEOUT)
    if response.status_code == 404:
        return None
    started = _answer(response)
    page = started.get("verification_uri_complete") or started.get("verification_uri")
    print(f"To sign in with {name}, open {started.get('verification_uri')}")
    print(f"and enter the code {started.get('user_code')}", end="")
    print(f" (or open {page})" if page != started.get("verification_uri") else "")
    sys.stdout.flush()
    interval = max(1.0, float(started.get("interval", 5)))
    deadline = time.monotonic() + float(started.get("expires_in", WAIT))
    while time.monotonic() < deadline:
        time.sleep(interval)
        response = web.post(
            f"{server}/auth/device/token", json={"login_id": started["login_id"]}, timeout=TIMEOUT
        )
        body = _body(response)
        if response.status_code == 400 and body.get("error") == "authorization_pending":
            continue
        if response.status_code == 400 and body.get("error") == "slow_down":
            interval += 5
            continue
        return _answer(response)
    raise Unauthorized("the sign-in was not finished in time: run registrum login again")


def _loopback_login(
    web: requests.Session, server: str, name: str, *, open_browser: bool
) -> dict[str, Any]:
    """The browser comes back to a one-time port on 127.0.0.1 with a one-time code."""
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    got: dict[str, str] = {}
    done = threading.Event()

    class Back(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            if query.get("state", [""])[0] != state or "code" not in query:
                self.send_error(400, "not the sign-in this command started")
                return
            got["code"] = query["code"][0]
            body = b"<!doctype html><title>Registrum</title><p>Signed in. You may close this tab."
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    listener = http.server.HTTPServer(("127.0.0.1", 0), Back)
    port = listener.server_address[1]
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        query = urlencode({"cli_port": port, "cli_state": state, "cli_challenge": challenge})
        url = f"{server}/auth/oidc/login?{query}"
        print(f"To sign in with {name}, open {url}", flush=True)
        if open_browser:
            webbrowser.open(url)
        if not done.wait(WAIT):
            raise Unauthorized("the sign-in was not finished in time: run registrum login again")
    finally:
        listener.shutdown()
        listener.server_close()
    response = web.post(
        f"{server}/auth/cli/token",
        json={"code": got["code"], "code_verifier": verifier},
        timeout=TIMEOUT,
    )
    return _answer(response)


def _logout(args: argparse.Namespace) -> int:
    server = _server(args)
    login = stored_login(server)
    if login is None:
        print(f"not signed in to {server} (nothing in {credentials_path()})")
        return 0
    if login.get("token_id"):
        try:  # the token stops working on the server too, where it can be reached
            requests.delete(
                f"{server}/api/v1/tokens/{int(login['token_id'])}",
                headers={"Authorization": f"Bearer {login['token']}"},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            print(f"could not revoke the token at {server} ({exc}); it expires by itself")
    forget_login(server)
    print(f"signed out of {server}")
    return 0


def add_commands(commands: Any) -> None:
    """Adds `login` and `logout` to the `registrum` command."""
    login = commands.add_parser(
        "login", help="sign in to a server through its identity provider (single sign-on)"
    )
    add_store(login, help=SERVER_HELP)
    login.add_argument(
        "--server", dest="store", default=None, metavar="URL", help="the same as --store"
    )
    login.add_argument(
        "--browser",
        action="store_true",
        help="sign in in a web browser on this machine even if the provider has a device flow",
    )
    login.add_argument(
        "--no-open", action="store_true", help="print the sign-in page's URL, open no browser"
    )
    login.set_defaults(handler=_login)
    logout = commands.add_parser("logout", help="forget (and revoke) the token of registrum login")
    add_store(logout, help=SERVER_HELP)
    logout.add_argument(
        "--server", dest="store", default=None, metavar="URL", help="the same as --store"
    )
    logout.set_defaults(handler=_logout)
