"""`registrum server` (a store over HTTP, with its access-control switch) and `registrum ui`
(the web UI over the embedded store, on loopback).

The server extra (FastAPI, uvicorn, SQLAlchemy through the store) is imported only when one
of these commands runs: `registrum --help` and the other commands never load it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from registrum.cli._common import add_store
from registrum.errors import InvalidArgument, RegistrumError
from registrum.validation import duration


def _has_server_extra(command: str) -> bool:
    """Whether the server extra is installed; if not, says how to get it."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(
            f"registrum {command} needs the server extra ({exc.name} is missing): "
            'pip install "registrum[server]"',
            file=sys.stderr,
        )
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_auth(args: argparse.Namespace) -> dict[str, Any] | None:
    """The access-control settings of `registrum server`; None (after one line on stderr)
    when it must not start: a non-loopback address without --auth or --insecure."""
    if not args.auth and not args.insecure and not is_loopback(args.host):
        print(
            f"registrum server: refusing to listen on {args.host} without access control; "
            "add --auth (API tokens and project roles) or --insecure (anyone who reaches "
            "the port may read and change everything)",
            file=sys.stderr,
        )
        return None
    try:
        oidc, trust = identity_settings(args)
    except ValueError as exc:
        print(f"registrum server: {exc}", file=sys.stderr)
        return None
    return {
        "auth": bool(args.auth),
        "admin_token": os.environ.get("REGISTRUM_ADMIN_TOKEN") or None,
        "admin_name": args.admin_name,
        "metrics_public": bool(args.metrics_public),
        "oidc": oidc,
        "trust": trust,
    }


def identity_settings(args: argparse.Namespace) -> tuple[Any, tuple[Any, ...]]:
    """The identity provider and trusted issuer that the options name; ValueError, naming
    the option, for a set that cannot work."""
    from registrum.server.oidc import OidcSettings, RoleMap, TrustRule

    oidc = None
    if args.oidc_issuer or args.oidc_client_id:
        if not (args.oidc_issuer and args.oidc_client_id):
            raise ValueError("--oidc-issuer and --oidc-client-id go together")
        if not args.auth:
            raise ValueError("--oidc-issuer needs --auth")
        oidc = OidcSettings(
            issuer=args.oidc_issuer.rstrip("/"),
            client_id=args.oidc_client_id,
            client_secret=os.environ.get("REGISTRUM_OIDC_CLIENT_SECRET") or None,
            scopes=args.oidc_scopes,
            groups_claim=args.oidc_groups_claim,
            username_claim=args.oidc_username_claim,
            role_map=RoleMap.load(args.oidc_role_map) if args.oidc_role_map else RoleMap(),
            provider_name=args.oidc_provider_name,
            session_hours=args.session_hours,
        )
    elif args.oidc_role_map:
        raise ValueError("--oidc-role-map needs --oidc-issuer")
    trust: tuple[Any, ...] = ()
    parts = (args.trust_issuer, args.trust_subject, args.trust_as)
    if any(parts):
        if not all(parts):
            raise ValueError("--trust-issuer, --trust-subject and --as go together")
        if not args.auth:
            raise ValueError("--trust-issuer needs --auth")
        trust = (
            TrustRule(
                issuer=args.trust_issuer.rstrip("/"),
                subject=args.trust_subject,
                user=args.trust_as,
                audience=args.trust_audience,
            ),
        )
    return oidc, trust


def _server(args: argparse.Namespace) -> int:
    if not _has_server_extra("server"):
        return 2
    import uvicorn

    from registrum.server import Settings, create_app
    from registrum.store import open_store

    access = server_auth(args)
    if access is None:
        return 2
    try:
        settings = Settings(
            **access,
            store_url=args.store or database_from_env(),
            blobs=args.blobs,
            proxy_blobs=args.proxy_blobs,
            upgrade=args.upgrade,
            max_body_bytes=args.max_body_mb * 1024 * 1024,
            webhook_senders=args.webhook_senders,
            webhook_retry_delay=args.webhook_retry_delay,
            webhook_max_attempts=args.webhook_attempts,
            webhook_timeout=args.webhook_timeout,
            allow_private_webhooks=args.allow_private_webhooks,
            heartbeat_timeout=args.heartbeat_timeout,
            gc_interval=duration(args.gc_interval, "--gc-interval"),
            gc_older_than=duration(args.gc_older_than, "--gc-older-than"),
        )
    except (ValueError, InvalidArgument) as exc:
        print(f"registrum server: {exc}", file=sys.stderr)
        return 2
    refused = network_sqlite_problem(settings.store_url)
    if refused is not None:
        print(f"registrum server: refusing to start: {refused}", file=sys.stderr)
        return 2
    # Open (create, upgrade) the store once up front, so a wrong URL, an unreachable
    # database or an older schema is one clear line, not a traceback from the server.
    try:
        open_store(settings.store_url, blobs=settings.blobs, upgrade=settings.upgrade).close()
    except (RegistrumError, OSError) as exc:
        print(f"registrum server: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_keep_alive=30,
        # X-Forwarded-For/-Proto name the client only when a trusted proxy sent them: audit
        # events without --auth name the caller's address.
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


def database_from_env() -> str | None:
    """REGISTRUM_URL when it names a database (a container's way to give the store); a
    server URL there is the clients' setting, not a store this server can serve."""
    url = os.environ.get("REGISTRUM_URL") or None
    if url is None or url.split("://", 1)[0].lower() in ("http", "https"):
        return None
    return url


def network_sqlite_problem(store_url: str | None) -> str | None:
    """Why a server must not serve `store_url`: a SQLite file on a network file system
    (see `registrum.store.filesystems`); None for any other store."""
    from sqlalchemy.engine import make_url

    from registrum.store.db import default_home
    from registrum.store.filesystems import sqlite_on_network_problem

    if store_url is None:
        return sqlite_on_network_problem(default_home() / "registrum.db")
    try:
        url = make_url(store_url)
    except Exception:  # opening the store names what is wrong with the URL
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return sqlite_on_network_problem(str(url.database))


def _ui(args: argparse.Namespace) -> int:
    """The web UI over the embedded store (REGISTRUM_HOME), on loopback only."""
    if not _has_server_extra("ui"):
        return 2
    import uvicorn

    from registrum.server import Settings, create_app
    from registrum.store import open_store

    # The UI serves the embedded store to its one user, on loopback: it upgrades as the
    # embedded store does.
    settings = Settings(store_url=args.store, blobs=args.blobs, upgrade=True)
    try:
        open_store(settings.store_url, blobs=settings.blobs).close()
    except (RegistrumError, OSError) as exc:
        print(f"registrum ui: {exc}", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{args.port}/"
    print(f"Registrum UI at {url} (Ctrl+C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


def _add_access_options(server: argparse.ArgumentParser) -> None:
    server.add_argument(
        "--auth",
        action="store_true",
        help="require an API token on every request and check each user's project roles; "
        "on first start a server admin is made, with the token REGISTRUM_ADMIN_TOKEN or "
        "a fresh one printed once",
    )
    server.add_argument(
        "--admin-name",
        default="admin",
        help="user name of the first server admin (default admin)",
    )
    server.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening on a non-loopback address without --auth (anyone who reaches "
        "the port may read and change everything)",
    )
    sso = server.add_argument_group(
        "single sign-on (with --auth; see docs/access-control.md)",
        "people sign in through an OpenID Connect provider; the redirect URI to register "
        "there is <server URL>/auth/oidc/callback; the client secret is read from "
        "REGISTRUM_OIDC_CLIENT_SECRET",
    )
    sso.add_argument("--oidc-issuer", metavar="URL", help="the provider's issuer URL")
    sso.add_argument("--oidc-client-id", metavar="ID", help="this server's client id there")
    sso.add_argument(
        "--oidc-scopes",
        default="openid profile email groups",
        metavar="SCOPES",
        help="scopes asked for (default: openid profile email groups)",
    )
    sso.add_argument(
        "--oidc-groups-claim",
        default="groups",
        metavar="CLAIM",
        help="the ID token's claim that lists the user's groups (default groups)",
    )
    sso.add_argument(
        "--oidc-username-claim",
        default="preferred_username",
        metavar="CLAIM",
        help="the claim that names a new user (default preferred_username, else email)",
    )
    sso.add_argument(
        "--oidc-role-map",
        metavar="FILE",
        help="YAML mapping groups to server-admin or to roles per project ('*': every "
        "project), applied at each sign-in",
    )
    sso.add_argument(
        "--oidc-provider-name",
        metavar="NAME",
        help="the provider's name on the sign-in button (default: the issuer's host)",
    )
    sso.add_argument(
        "--session-hours",
        type=float,
        default=12.0,
        metavar="HOURS",
        help="how long a browser session lasts (default 12)",
    )
    sso.add_argument(
        "--trust-issuer",
        metavar="URL",
        help="workload identity: accept ID tokens of this issuer (a CI system, Kubernetes) "
        "at /auth/token-exchange, for short-lived tokens of the --as service account",
    )
    sso.add_argument(
        "--trust-subject",
        metavar="PATTERN",
        help="the subjects accepted, a glob such as 'repo:acme/vision:*'",
    )
    sso.add_argument("--as", dest="trust_as", metavar="USER", help="the service account")
    sso.add_argument(
        "--trust-audience",
        default="registrum",
        metavar="AUD",
        help="the audience those ID tokens must name (default registrum)",
    )
    server.add_argument(
        "--metrics-public",
        action="store_true",
        help="with --auth, let /api/v1/metrics be read without a token (a Prometheus scraper "
        "on a private network); without it the metrics need a server admin's token",
    )


def add_commands(commands: Any) -> None:
    """Adds `server` and `ui` to the `registrum` command."""
    server = commands.add_parser("server", help="serve a store over HTTP")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    server.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    add_store(
        server,
        help="database URL: sqlite:///path.db or postgresql+psycopg://user@host/db "
        "(default: REGISTRUM_URL when it is a database URL, else the SQLite file under "
        "REGISTRUM_HOME, ~/.registrum)",
    )
    server.add_argument(
        "--blobs",
        default=os.environ.get("REGISTRUM_BLOBS") or None,
        help="where artifact blobs live: a folder, or s3://BUCKET/PREFIX for an S3-compatible "
        "bucket (credentials, region, endpoint from the standard AWS variables); default "
        "$REGISTRUM_BLOBS, else blobs/ beside the database",
    )
    server.add_argument(
        "--proxy-blobs",
        action="store_true",
        help="with an s3:// bucket, pass blob bytes through the server (for clients that "
        "cannot reach the bucket) instead of handing out presigned URLs",
    )
    server.add_argument(
        "--upgrade",
        action="store_true",
        help="upgrade a database at an older schema revision on start (without it, the "
        "server refuses one and names `registrum db upgrade`, to run after a backup)",
    )
    server.add_argument(
        "--max-body-mb", type=int, default=64, help="largest JSON request body in MiB (default 64)"
    )
    server.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    server.add_argument("--access-log", action="store_true", help="log every request")
    _add_access_options(server)
    server.add_argument(
        "--webhook-senders",
        type=int,
        default=4,
        help="webhook deliveries sent at once; 0: this server delivers none (default 4)",
    )
    server.add_argument(
        "--webhook-retry-delay",
        type=float,
        default=10.0,
        help="seconds before a failed delivery's first retry, doubling after (default 10)",
    )
    server.add_argument(
        "--webhook-attempts",
        type=int,
        default=8,
        help="attempts before a delivery is marked failed (default 8)",
    )
    server.add_argument(
        "--webhook-timeout",
        type=float,
        default=10.0,
        help="seconds a webhook receiver has to connect and to answer (default 10)",
    )
    server.add_argument(
        "--allow-private-webhooks",
        action="store_true",
        help="let webhooks reach loopback, private, link-local and other non-public addresses "
        "(receivers on your own network); refused by default",
    )
    server.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="comma-separated IPs or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are trusted, or '*' for any (default: $FORWARDED_ALLOW_IPS, "
        "else 127.0.0.1,::1)",
    )
    server.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=600.0,
        help="seconds without a heartbeat after which a running run is marked crashed "
        "(default 600)",
    )
    server.add_argument(
        "--gc-interval",
        default="0s",
        metavar="DURATION",
        help="collect garbage this often, once across replicas (such as 1d; default 0s: "
        "never, run `registrum gc` by hand)",
    )
    server.add_argument(
        "--gc-older-than",
        default="7d",
        metavar="DURATION",
        help="grace period of those collections: what was deleted longer ago goes (default 7d)",
    )
    server.set_defaults(handler=_server)
    ui = commands.add_parser("ui", help="browse the embedded store in the web UI (loopback)")
    ui.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (default 8766)")
    add_store(ui, help="database URL (default: the store under REGISTRUM_HOME)")
    ui.add_argument("--blobs", default=None, help="artifact blobs folder (default: beside it)")
    ui.add_argument("--open", action="store_true", help="open the UI in a web browser")
    ui.set_defaults(handler=_ui)
