"""The `registrum` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


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


def _server(args: argparse.Namespace) -> int:
    if not _has_server_extra("server"):
        return 2
    import uvicorn

    from registrum.cli_access import server_auth
    from registrum.errors import RegistrumError
    from registrum.server import Settings, create_app
    from registrum.store import open_store

    access = server_auth(args)
    if access is None:
        return 2
    try:
        settings = Settings(
            **access,
            store_url=args.store,
            blobs=args.blobs,
            max_body_bytes=args.max_body_mb * 1024 * 1024,
            webhook_senders=args.webhook_senders,
            webhook_retry_delay=args.webhook_retry_delay,
            webhook_max_attempts=args.webhook_attempts,
            webhook_timeout=args.webhook_timeout,
            allow_private_webhooks=args.allow_private_webhooks,
            heartbeat_timeout=args.heartbeat_timeout,
        )
    except ValueError as exc:
        print(f"registrum server: {exc}", file=sys.stderr)
        return 2
    # Open (create, upgrade) the store once up front, so a wrong URL or an
    # unreachable database is one clear line, not a traceback from the server.
    try:
        open_store(settings.store_url, blobs=settings.blobs).close()
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


def _ui(args: argparse.Namespace) -> int:
    """The web UI over the embedded store (REGISTRUM_HOME), on loopback only."""
    if not _has_server_extra("ui"):
        return 2
    import uvicorn

    from registrum.errors import RegistrumError
    from registrum.server import Settings, create_app
    from registrum.store import open_store

    settings = Settings(store_url=args.store, blobs=args.blobs)
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


def _sync(args: argparse.Namespace) -> int:
    """Delivers spools; exits 1 while anything stays undelivered or refused."""
    from registrum.client.settings import ClientSettings
    from registrum.client.sync import sync_spools

    settings = ClientSettings.from_env(store=args.store)
    results = sync_spools(
        settings.spool_root,
        home=settings.home,
        store=settings.store if args.store else None,
        token=settings.token,
        retry_rejected=args.retry_rejected,
    )
    if not results:
        print(f"nothing to sync in {settings.spool_root}")
        return 0
    unfinished = 0
    for r in results:
        if r.left:
            state = f"{r.left} event(s) left"
        elif r.rejected:
            state = f"{r.rejected} event(s) rejected"
        else:
            state = "done"
        crashed = "; its process is gone: marked crashed" if r.crashed else ""
        print(f"run {r.run_id}: {r.delivered} event(s) delivered, {state}{crashed}")
        if r.error:
            print(
                f"  could not finish: {r.error}; run registrum sync again once the store is "
                "reachable (or --store URL to deliver elsewhere)",
                file=sys.stderr,
            )
        if r.rejected:
            print(
                f"  the store refused them: {r.reason or 'no reason kept'}; fix that, then: "
                "registrum sync --retry-rejected",
                file=sys.stderr,
            )
        unfinished += bool(r.left or r.rejected)
    return 1 if unfinished else 0


def _client(args: argparse.Namespace, *, read: bool = False) -> Any:
    """A Client for `--store`; with `read`, one that creates no store where none is yet."""
    from registrum.client.api import Client

    if read:
        _require_store(args.store)
    return Client(args.store)


def _require_store(store: str | None) -> None:
    """Raises NotFound when `store` (or the default) is a SQLite file that does not exist, so a
    command that only reads leaves no empty database and folders behind."""
    from pathlib import Path

    from registrum.client.settings import ClientSettings
    from registrum.errors import NotFound

    settings = ClientSettings.from_env(store=store)
    if settings.store is None:
        where = settings.home / "registrum.db"
        hint = f"nothing has been recorded under REGISTRUM_HOME={settings.home} yet"
    elif settings.store.startswith("sqlite:///") and settings.store != "sqlite:///:memory:":
        where = Path(settings.store.removeprefix("sqlite:///")).expanduser()
        hint = "nothing has been recorded there yet"
    else:
        return
    if not where.exists():
        raise NotFound(
            f"there is no store yet at {where}: {hint}. Start a run with registrum.init, "
            "or name a store with --store URL (or REGISTRUM_URL)"
        )


def _when(stamp: float | None) -> str:
    import datetime

    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _runs_list(args: argparse.Namespace) -> int:
    with _client(args, read=True) as client:
        runs = client.runs(
            args.project, filter=args.filter, order_by=args.order_by, limit=args.limit
        )
    print(f"{'id':<32}  {'name':<24}  {'status':<9}  {'started':<16}  metrics")
    for r in runs:
        shown = ", ".join(f"{k}={m.last:.4g}" for k, m in list(r.metrics.items())[:4])
        name = (r.name or "-")[:24]
        print(f"{r.id:<32}  {name:<24}  {r.status:<9}  {_when(r.start_time):<16}  {shown}")
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    with _client(args, read=True) as client:
        r = client.run(args.run_id)
    print(f"run {r.id}  ({r.project}/{r.name or '-'})  {r.status}")
    print(f"  job type {r.job_type or '-'}, user {r.user or '-'}, host {r.host or '-'}")
    print(
        f"  started {_when(r.start_time)}, ended {_when(r.end_time)}, parent {r.parent_id or '-'}"
    )
    for title, items in (("params", r.params), ("tags", r.tags)):
        if items:
            print(f"  {title}:")
            for k, value in items.items():
                print(f"    {k} = {value}")
    if r.metrics:
        print("  metrics (last, min, max, count):")
        for k, m in r.metrics.items():
            print(f"    {k}: {m.last:.6g}, {m.min}, {m.max}, {m.count} at step {m.last_step}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    with _client(args, read=True) as client:
        models = client.models(args.project)
    print(f"{'name':<32}  {'project':<16}  {'latest':>6}  aliases")
    for m in models:
        aliases = ", ".join(f"{a}→{n}" for a, n in m.aliases.items())
        print(f"{m.name:<32}  {m.project:<16}  {m.latest_version or '-':>6}  {aliases}")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    with _client(args, read=True) as client:
        if "@" in args.ref:
            versions = [client.model_version(args.ref)]
        else:
            versions = client.model_versions(args.ref)
    for mv in versions:
        aliases = f"  @{', @'.join(mv.aliases)}" if mv.aliases else ""
        print(
            f"{mv.model}@{mv.version}{aliases}  from run {mv.run_id or '-'}  ({mv.flavor or '-'})"
        )
        metrics = ", ".join(f"{k}={x:.4g}" for k, x in mv.metrics.items())
        print(f"  metrics: {metrics or '-'}")
        print(f"  files: {mv.artifact.file_count}, {mv.artifact.size:,} bytes")
    return 0


def _download(args: argparse.Namespace) -> int:
    with _client(args, read=True) as client:
        out = client.download(args.ref, args.dir)
    print(f"downloaded {args.ref} into {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from registrum.demo import main as demo

    return demo(store=args.store, steps=args.steps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registrum", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="serve a store over HTTP")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    server.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    server.add_argument(
        "--store",
        default=None,
        help="database URL: sqlite:///path.db or postgresql+psycopg://user@host/db "
        "(default: the SQLite file under REGISTRUM_HOME, ~/.registrum)",
    )
    server.add_argument(
        "--blobs",
        default=None,
        help="folder for artifact blobs (default: blobs/ beside the database)",
    )
    server.add_argument(
        "--max-body-mb", type=int, default=64, help="largest JSON request body in MiB (default 64)"
    )
    server.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    server.add_argument("--access-log", action="store_true", help="log every request")
    from registrum.cli_access import add_commands as add_access_commands
    from registrum.cli_access import add_server_options

    add_server_options(server)
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
    server.set_defaults(handler=_server)
    ui = commands.add_parser("ui", help="browse the embedded store in the web UI (loopback)")
    ui.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (default 8766)")
    ui.add_argument(
        "--store", default=None, help="database URL (default: the store under REGISTRUM_HOME)"
    )
    ui.add_argument("--blobs", default=None, help="artifact blobs folder (default: beside it)")
    ui.add_argument("--open", action="store_true", help="open the UI in a web browser")
    ui.set_defaults(handler=_ui)

    sync = commands.add_parser(
        "sync", help="deliver the spooled data of runs that ran offline or whose process died"
    )
    sync.add_argument(
        "--store", default=None, help="deliver there instead of where each run was going"
    )
    sync.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the events the store refused (after fixing a token, a role or a URL)",
    )
    sync.set_defaults(handler=_sync)

    store_help = "http(s)://host:port or a database URL (default REGISTRUM_URL, else embedded)"
    runs = commands.add_parser("runs", help="list and show runs").add_subparsers(
        dest="action", required=True
    )
    runs_list = runs.add_parser("list", help="runs of a project, filtered and ordered")
    runs_list.add_argument("project")
    runs_list.add_argument("--filter", default=None, help='e.g. "metrics.loss < 0.3"')
    runs_list.add_argument("--order-by", default=None, help='e.g. "-metrics.val_acc"')
    runs_list.add_argument("--limit", type=int, default=20)
    runs_list.add_argument("--store", default=None, help=store_help)
    runs_list.set_defaults(handler=_runs_list)
    runs_show = runs.add_parser("show", help="one run: params, tags, metric summaries")
    runs_show.add_argument("run_id")
    runs_show.add_argument("--store", default=None, help=store_help)
    runs_show.set_defaults(handler=_runs_show)

    models = commands.add_parser("models", help="list and show registered models").add_subparsers(
        dest="action", required=True
    )
    models_list = models.add_parser("list", help="registered models")
    models_list.add_argument("--project", default=None)
    models_list.add_argument("--store", default=None, help=store_help)
    models_list.set_defaults(handler=_models_list)
    models_show = models.add_parser("show", help="a model's versions, or one (NAME@REF)")
    models_show.add_argument("ref")
    models_show.add_argument("--store", default=None, help=store_help)
    models_show.set_defaults(handler=_models_show)

    download = commands.add_parser("download", help="download a model version's files")
    download.add_argument("ref", help="NAME@ALIAS or NAME@VERSION")
    download.add_argument("dir")
    download.add_argument("--store", default=None, help=store_help)
    download.set_defaults(handler=_download)

    from registrum.cli_governance import add_commands

    add_commands(commands, runs, models, store_help)
    add_access_commands(commands, store_help)
    from registrum.cli_approvals import add_commands as add_approval_commands

    add_approval_commands(commands, models, store_help)

    demo = commands.add_parser("demo", help="train a small model, track it, register it")
    demo.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    demo.add_argument("--store", default=None, help=store_help)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from registrum.errors import RegistrumError

    try:
        code: int = args.handler(args)
    except RegistrumError as exc:
        print(f"registrum {args.command}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
