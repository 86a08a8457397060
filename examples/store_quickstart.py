"""Log a small run, register its model and query the store, using the service layer directly.

python examples/store_quickstart.py                     # the embedded store (~/.registrum)
python examples/store_quickstart.py http://127.0.0.1:8765   # a running `registrum server`
"""

from __future__ import annotations

import io
import math
import sys
import time
from typing import Any


def open_target(argv: list[str]) -> Any:
    if len(argv) > 1 and argv[1].startswith("http"):
        from registrum.client.http import HttpStore

        return HttpStore(argv[1])
    from registrum.store import open_store

    return open_store()


def main(argv: list[str]) -> None:
    store = open_target(argv)
    run = store.create_run(
        "quickstart",
        name=f"sgd-{int(time.time())}",
        job_type="train",
        config={"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}},
        tags={"team": "docs"},
    )
    # A toy training curve, sent as one columnar batch.
    steps = list(range(100))
    losses = [math.exp(-0.03 * s) + 0.05 for s in steps]
    store.log_metrics(run.id, seq=0, keys=["loss"] * len(steps), steps=steps, values=losses)
    store.finish_run(run.id)

    info = store.put_blob(io.BytesIO(b"weights of a very small model"))
    version = store.register_model_version(
        "quickstart-model",
        run_id=run.id,
        files=[{"path": "model.bin", "sha256": info.sha256, "size": info.size}],
        flavor="bytes",
        aliases=["candidate"],
    )
    best = store.search_runs(
        "quickstart",
        filter="metrics.loss < 0.5 and params.optimizer.name = 'sgd'",
        order_by="metrics.loss",
        limit=5,
    ).items
    print(f"run {run.id}: final loss {store.get_run(run.id).metrics['loss'].last:.4f}")
    print(f"registered {version.model} version {version.version} as @candidate")
    print(f"{len(best)} matching run(s); best: {best[0].name}")
    store.close()


if __name__ == "__main__":
    main(sys.argv)
