"""The `registrum` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _server(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from registrum.server import Settings, create_app
    except ImportError as exc:
        print(
            f"registrum server needs the server extra ({exc.name} is missing): "
            'pip install "registrum[server]"',
            file=sys.stderr,
        )
        return 2
    from registrum.errors import RegistrumError
    from registrum.store import open_store

    settings = Settings(
        store_url=args.store, blobs=args.blobs, max_body_bytes=args.max_body_mb * 1024 * 1024
    )
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
    )
    return 0


def _sync(args: argparse.Namespace) -> int:
    from registrum.client.settings import ClientSettings
    from registrum.client.sync import sync_spools

    settings = ClientSettings.from_env(store=args.store)
    results = sync_spools(
        settings.spool_root, home=settings.home, store=args.store, token=settings.token
    )
    if not results:
        print(f"nothing to sync in {settings.spool_root}")
        return 0
    failed = 0
    for r in results:
        state = "done" if r.left == 0 else f"{r.left} event(s) left"
        print(f"run {r.run_id}: {r.delivered} event(s) delivered, {state}")
        if r.error:
            failed += 1
            print(f"  could not finish: {r.error}", file=sys.stderr)
    return 1 if failed else 0


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
    server.set_defaults(handler=_server)
    sync = commands.add_parser(
        "sync", help="deliver the spooled data of runs that ran offline or whose process died"
    )
    sync.add_argument(
        "--store", default=None, help="deliver there instead of where each run was going"
    )
    sync.set_defaults(handler=_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
