"""`registrum demo`: a small real training run, tracked and registered, then a tour of it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import registrum


def _data(n: int, seed: int) -> tuple[object, object]:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    true_w = np.linspace(-1.5, 1.5, 8)
    y = (x @ true_w + rng.normal(scale=0.5, size=n) > 0).astype(np.float64)
    return x, y


def main(*, store: str | None = None, steps: int = 200) -> int:
    """Trains logistic regression with gradient descent in numpy and tracks it."""
    import numpy as np

    x_train, y_train = _data(2000, seed=0)
    x_test, y_test = _data(500, seed=1)
    assert isinstance(x_train, np.ndarray) and isinstance(y_train, np.ndarray)
    assert isinstance(x_test, np.ndarray) and isinstance(y_test, np.ndarray)
    lr = 0.5
    config = {"lr": lr, "steps": steps, "model": {"kind": "logistic-regression", "features": 8}}

    run = registrum.init(
        project="demo", name="logreg", config=config, job_type="train", store=store
    )
    run.use_dataset(x_train, name="demo-train", role="train")
    run.use_dataset(x_test, name="demo-test", role="test")
    w = np.zeros(8)
    for step in range(steps):
        p = 1 / (1 + np.exp(-(x_train @ w)))
        loss = float(-np.mean(y_train * np.log(p + 1e-12) + (1 - y_train) * np.log(1 - p + 1e-12)))
        w -= lr * x_train.T @ (p - y_train) / len(y_train)
        if step % 10 == 0 or step == steps - 1:
            acc = float(np.mean((x_test @ w > 0) == y_test))
            run.log({"train/loss": loss, "test/acc": acc}, step=step)

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.npy"
        np.save(weights, w)
        version = run.register_model(
            "demo-classifier",
            path=weights,
            flavor="numpy",
            aliases=["candidate"],
            description="logistic regression from registrum demo",
        )
    run.finish()

    settings = run.settings
    where = settings.store or str(settings.home / "registrum.db")
    summary = registrum.Client(settings.store).run(run.id)
    print(f"Tracked run {run.id} in project 'demo' ({where}).")
    print(f"  params:  {summary.params}")
    print(
        "  metrics: "
        + ", ".join(f"{k}={m.last:.4f} ({m.count} points)" for k, m in summary.metrics.items())
    )
    print("  data:    demo-train and demo-test, fingerprinted by content")
    if version is not None:
        print(f"Registered {version.model} version {version.version} as @candidate.")
    print("Look around:")
    print(f"  registrum runs show {run.id}")
    print("  registrum runs list demo --order-by=-metrics.test/acc")
    print("  registrum models show demo-classifier")
    print("  registrum download demo-classifier@candidate ./model")
    print("  registrum ui            # the same in the web UI, at http://127.0.0.1:8766/")
    return 0
