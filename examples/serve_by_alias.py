"""Serve a model by its alias and watch the server follow an approved promotion.

1. Trains two XGBoost classifiers with the callback; each becomes a version of one model.
2. Protects `@production` (moving it needs an approved request) and promotes version 1.
3. Starts `registrum serve NAME@production` and keeps calling it from a client thread.
4. Requests and approves moving `@production` to version 2, and watches `/version` switch
   while the client goes on calling: no request fails.

python examples/serve_by_alias.py                     # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/serve_by_alias.py   # a `registrum server`

Needs the XGBoost and server extras: pip install "registrum[xgboost,server]".
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import requests
import xgboost as xgb
from registrum_xgboost import RegistrumCallback

import registrum

MODEL = "serve-example-classifier"
FEATURES = ["tenure", "monthly_spend", "support_calls"]


def train(depth: int) -> int:
    """Trains a classifier; answers the version number it was registered as."""
    rng = np.random.default_rng(depth)
    x = rng.normal(size=(500, len(FEATURES)))
    y = (x[:, 0] - 2 * x[:, 2] + rng.logistic(size=500) > 0).astype(np.float32)
    callback = RegistrumCallback("serve-example", register_as=MODEL, capture_environment=False)
    params = {"objective": "binary:logistic", "max_depth": depth, "nthread": 1}
    xgb.train(params, xgb.DMatrix(x, label=y, feature_names=FEATURES), 20, callbacks=[callback])
    with registrum.Client() as client:
        return client.model_versions(MODEL)[0].version


def promote(client: registrum.Client, version: int) -> None:
    """Moves the protected alias the governed way: a request, then its approval."""
    request = client.request_promotion(MODEL, "production", version, comment="example")
    client.approve(request.id, comment="looks good")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    first, second = train(2), train(4)
    with registrum.Client() as client:
        client.set_policy(MODEL, protected=["production"], allow_self_approval=True)
        promote(client, first)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "registrum.cli", "serve", f"{MODEL}@production"]
    server = subprocess.Popen([*command, "--port", str(port), "--poll-interval", "1"])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("registrum serve did not start")
            time.sleep(0.1)
        print(f"serving {MODEL}@production: version {version_at(url)}")

        answers: list[tuple[int, int]] = []  # (status, version serving after it)
        stop = threading.Event()
        row = {"dataframe_records": [dict.fromkeys(FEATURES, 0.5)]}

        def keep_calling() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    answer = session.post(f"{url}/invocations", json=row, timeout=30)
                    answers.append((answer.status_code, version_at(url, session)))

        caller = threading.Thread(target=keep_calling)
        caller.start()
        time.sleep(1)
        with registrum.Client() as client:
            promote(client, second)
        approved = time.monotonic()
        while version_at(url) != second:
            if time.monotonic() - approved > 30:
                raise SystemExit("the server did not switch")
            time.sleep(0.05)
        switched = time.monotonic() - approved
        time.sleep(1)
        stop.set()
        caller.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    failed = sum(status != 200 for status, _ in answers)
    print(f"approved version {second}: serving it {switched:.1f} s later")
    print(f"{len(answers)} requests while it switched, {failed} failed")


def version_at(url: str, session: requests.Session | None = None) -> int:
    version: int = (session or requests).get(f"{url}/version", timeout=30).json()["version"]
    return version


if __name__ == "__main__":
    main()
