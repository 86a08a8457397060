"""Tiny Lightning modules and data for the integration tests (importable by name, so that
`load_model` and DDP's spawned processes can rebuild them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

FEATURES = 4


class Regressor(pl.LightningModule):
    def __init__(
        self, lr: float = 0.05, hidden: int = 8, optimizer: str = "adam", fail: str | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
        )
        self.example_input_array = torch.zeros(2, FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.hparams.fail == "interrupt" and self.global_step == 2:
            raise KeyboardInterrupt
        if self.hparams.fail == "error" and self.global_step == 2:
            raise RuntimeError("the training step broke")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class PairsDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Not array-backed: computed on access."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.full((FEATURES,), i / self.n)
        return x, x.sum(dim=0, keepdim=True)


class Data(pl.LightningDataModule):
    def __init__(self, n: int = 64, batch_size: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, FEATURES, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=generator)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(PairsDataset(16), batch_size=self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(self.x[:16], self.y[:16]), batch_size=8)


def trainer(root: Path, callbacks: list[pl.Callback], **options: Any) -> pl.Trainer:
    """A quiet CPU trainer writing under `root`."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 3,
        "log_every_n_steps": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(root),
        **options,
    }
    return pl.Trainer(callbacks=callbacks, **settings)
