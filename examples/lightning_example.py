"""Train a small Lightning regressor on synthetic data; RegistrumCallback records the run,
uploads its best checkpoint and registers it; then load the registered version back.

python examples/lightning_example.py                         # the embedded store (~/.registrum)
REGISTRUM_URL=http://127.0.0.1:8765 python examples/lightning_example.py   # a running server
"""

from __future__ import annotations

import tempfile
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from registrum_lightning import RegistrumCallback, load_model
from torch.utils.data import DataLoader, TensorDataset

import registrum

FEATURES = 8


class Regressor(pl.LightningModule):
    """A two-layer MLP fitted to a noisy linear target."""

    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def synthetic(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=generator)
    weights = torch.linspace(-1.0, 1.0, FEATURES)
    y = (x @ weights).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=generator)
    return TensorDataset(x, y)


def main() -> None:
    torch.manual_seed(0)
    train = DataLoader(synthetic(1024, seed=0), batch_size=64, shuffle=True)
    val = DataLoader(synthetic(256, seed=1), batch_size=256)
    callback = RegistrumCallback(
        project="lightning-example",
        register_as="lightning-example-regressor",
        aliases=["candidate"],
        name="mlp",
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=10,
            log_every_n_steps=4,
            default_root_dir=folder,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[callback, ModelCheckpoint(monitor="val_loss")],
        )
        trainer.fit(Regressor(), train, val)

    client = registrum.Client()
    run = client.run(callback.run_id or "")
    version = client.model_version("lightning-example-regressor@candidate")
    print(f"run {run.id} ({run.status}): final val_loss {run.metrics['val_loss'].last:.4f}")
    print(f"registered {version.model} version {version.version} as @candidate")
    print(f"  from checkpoint {version.artifact.metadata['checkpoint']}")

    # Regressor is defined in this script (__main__): it is passed, not imported by name.
    model = load_model("lightning-example-regressor@candidate", module_class=Regressor)
    x, y = synthetic(4, seed=2).tensors
    with torch.no_grad():
        predictions = model(x).squeeze(1).tolist()
    targets = y.squeeze(1).tolist()
    print(
        "predictions", [round(p, 3) for p in predictions], "targets", [round(t, 3) for t in targets]
    )
    where = client.settings.store or client.settings.home
    print(f"store: {where}; look at it with:")
    print(f"  registrum runs show {run.id}")
    print("  registrum models show lightning-example-regressor@candidate")
    client.close()


if __name__ == "__main__":
    main()
