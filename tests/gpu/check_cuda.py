"""The training integrations on a CUDA GPU, on the embedded store (CI has no GPU; run it by hand
where there is one):

    python tests/gpu/check_cuda.py lightning   # Lightning, 16-mixed precision, on cuda:0
    python tests/gpu/check_cuda.py keras       # Keras 3 on its torch backend, on cuda:0

Each prints a PASS or FAIL line per check and exits with 1 if any failed. The store is made
in a temporary folder (REGISTRUM_HOME)."""

from __future__ import annotations

import json
import os
import sys
import tempfile

FEATURES = 16  # as cuda_models.FEATURES


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, what: str, passed: object, detail: object = "") -> None:
        self.failed += not passed
        print(f"{'PASS' if passed else 'FAIL'} {what}" + (f"  [{detail}]" if detail else ""))


def lightning(check: Checks) -> None:
    import lightning
    import lightning.pytorch as pl
    import torch
    from cuda_models import Net
    from lightning.pytorch.callbacks import ModelCheckpoint
    from registrum_lightning import RegistrumCallback, load_model
    from torch.utils.data import DataLoader, TensorDataset

    import registrum

    gpu = torch.cuda.get_device_name()
    print(f"torch {torch.__version__}, lightning {lightning.__version__}, {gpu}")

    x = torch.randn(2048, FEATURES, generator=torch.Generator().manual_seed(0))
    y = x.sum(1, keepdim=True)
    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=256)
    callback = RegistrumCallback(
        project="cuda",
        register_as="cuda-mlp",
        aliases=["candidate"],
        checkpoints="all",
        system_metrics=0.5,
    )
    model = Net()
    with tempfile.TemporaryDirectory() as folder:
        trainer = pl.Trainer(
            accelerator="gpu",
            devices=1,
            precision="16-mixed",
            max_epochs=3,
            log_every_n_steps=8,
            default_root_dir=folder,
            logger=False,
            enable_progress_bar=False,
            callbacks=[callback, ModelCheckpoint(dirpath=folder, save_top_k=-1)],
        )
        trainer.fit(model, train, val)

    with registrum.Client() as client:
        run = client.run(callback.run_id or "")
        check("the run finished", run.status == "finished", run.status)
        params = json.dumps(run.params, default=str)
        check("precision 16-mixed is a param", "16-mixed" in params)
        adamw = "AdamW" in params and "weight_decay" in params
        check("AdamW and its weight decay are params", adamw)
        check("losses and epoch", {"train_loss", "val_loss", "epoch"} <= set(run.metrics))
        check("the learning rate", "lr" in run.metrics, sorted(run.metrics))
        sampled = [key for key in run.metrics if key.startswith("system/gpu")]
        check("GPU use sampled", sampled, sampled)
        environment = json.dumps(client.environment(run.id), default=str)
        check("the environment names the GPU", gpu in environment)
        checkpoints = client.artifacts("cuda", run_id=run.id, type="checkpoint")
        check("every checkpoint uploaded", len(checkpoints) == 3, len(checkpoints))
        check("registered as @candidate", client.model_version("cuda-mlp@candidate").version == 1)
    model.eval()
    for where in ("cuda", "cpu"):
        loaded = load_model("cuda-mlp@candidate", map_location=where).eval()
        with torch.no_grad():
            same = torch.equal(loaded(x[:32].to(where)), model.to(where)(x[:32].to(where)))
        check(f"load_model(map_location={where!r}) predicts as the trained model", same)


def keras(check: Checks) -> None:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import numpy as np
    from registrum_keras import RegistrumCallback, load_model

    import registrum

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, FEATURES)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", metrics=["mae"])
    device = str(model.weights[0].value.device)
    check("the weights are on the GPU", device.startswith("cuda"), device)
    callback = RegistrumCallback(
        project="cuda", register_as="cuda-keras", checkpoints="all", log_batches_every=10
    )
    model.fit(x, y, batch_size=64, epochs=3, validation_split=0.2, callbacks=[callback], verbose=0)

    with registrum.Client() as client:
        run = client.run(callback.run_id or "")
        check("the run finished", run.status == "finished", run.status)
        expected = {"loss", "val_loss", "learning_rate", "batch/loss"}
        check("epoch, batch and learning-rate metrics", expected <= set(run.metrics))
        check("the torch backend is a param", "torch" in json.dumps(run.params, default=str))
        checkpoints = client.artifacts("cuda", run_id=run.id, type="checkpoint")
        check("every checkpoint uploaded", len(checkpoints) == 3, len(checkpoints))
    loaded = load_model("cuda-keras@latest")
    same = np.array_equal(loaded.predict(x[:64], verbose=0), model.predict(x[:64], verbose=0))
    check("the registered model predicts as the trained one", same)


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("lightning", "keras"):
        sys.exit(__doc__)
    os.environ["REGISTRUM_HOME"] = tempfile.mkdtemp(prefix="registrum-cuda-")
    check = Checks()
    {"lightning": lightning, "keras": keras}[sys.argv[1]](check)
    print("all passed" if not check.failed else f"{check.failed} failed")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
