"""`registrum serve NAME@ALIAS`: a registered model behind an MLflow-compatible scoring
endpoint that follows its alias (`registrum.serve`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from registrum.cli._common import add_store
from registrum.serve import CONFIG, Served, create_app


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print(
            'registrum serve needs the server extra: pip install "registrum[server]"',
            file=sys.stderr,
        )
        return 2
    read: dict[str, str | None] = {}
    for what, path in (("token", args.token_file), ("secret", args.webhook_secret_file)):
        read[what] = None if path is None else Path(path).read_text().strip()
        if path is not None and not read[what]:
            print(f"registrum serve: {path} holds no {what}", file=sys.stderr)
            return 2
    token, secret = read["token"], read["secret"]
    config = {
        "ref": args.ref,
        "store": args.store,
        "poll_interval": args.poll_interval,
        "token": token,
        "max_body_bytes": args.max_body_mb << 20,
        "webhook_secret": secret,
    }
    served = Served(args.ref, args.store, args.poll_interval)
    served.start()  # a reference that cannot be served stops here, with what to fix
    assert served.model is not None
    print(f"serving {served.model.ref} ({args.ref}) on http://{args.host}:{args.port}")
    sys.stdout.flush()
    if args.workers > 1:  # each worker loads and follows the alias by itself
        served.stop()
        os.environ[CONFIG] = json.dumps(config)
        uvicorn.run(
            "registrum.serve:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
        )
        return 0
    app = create_app(
        served, token=token, max_body_bytes=config["max_body_bytes"], webhook_secret=secret
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model version over HTTP (MLflow's scoring protocol), following its alias",
    )
    serve.add_argument("ref", metavar="NAME@ALIAS", help="or NAME@VERSION")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    serve.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to ask where the alias points (default 5)",
    )
    serve.add_argument(
        "--token-file", default=None, help="require this token (Bearer) on /invocations"
    )
    serve.add_argument(
        "--webhook-secret-file",
        default=None,
        help="the secret of a Registrum webhook on alias.moved pointed at /reload: the "
        "server then switches at once, not at the next poll",
    )
    serve.add_argument(
        "--max-body-mb", type=int, default=64, help="largest request body in MiB (default 64)"
    )
    add_store(serve)
    serve.set_defaults(handler=_serve)
