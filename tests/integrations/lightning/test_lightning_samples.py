"""`log_samples=`: after each validation epoch of a fit, the module's predictions for a few
validation samples as a table, and image batches as captioned images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning_models import Data, Regressor, trainer
from registrum_lightning import RegistrumCallback
from torch.utils.data import DataLoader, TensorDataset

import registrum
from targets import Target


class Digits(pl.LightningModule):
    """Three classes of 1×6×6 images."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _images() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(12, 1, 6, 6, generator=generator)
    y = torch.randint(0, 3, (12,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=6)


def test_image_samples_with_predictions(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback("p", store=target.store, checkpoints=None, log_samples=2)
    fit = trainer(tmp_path, [callback], max_epochs=2, num_sanity_val_steps=1)
    fit.fit(Digits(), train_dataloaders=_images(), val_dataloaders=_images())
    with registrum.Client(target.store) as client:
        media = client.media(callback.run_id)
        tables = [m for m in media if m.key == "val/samples"]
        assert [m.step for m in tables] == [2, 4]  # once per epoch; not the sanity check
        table = client.table(callback.run_id, "val/samples", 4)
        assert set(table) == {"prediction", "confidence", "target", "input"}
        assert len(table["prediction"]) == 2 and all(p in (0, 1, 2) for p in table["prediction"])
        assert all(1 / 3 <= c <= 1 for c in table["confidence"])
        assert table["input"] == ["(1, 6, 6)", "(1, 6, 6)"]
        images = [m for m in media if m.kind == "image"]
        assert sorted({m.key for m in images}) == ["val/samples/0", "val/samples/1"]
        first = next(m for m in images if m.key == "val/samples/0" and m.step == 4)
        assert (first.meta["width"], first.meta["height"]) == (6, 6)
        assert first.meta["caption"] == (
            f"prediction {table['prediction'][0]}, target {table['target'][0]}"
        )


def test_samples_of_a_regressor_and_no_samples_unless_asked(target: Target, tmp_path: Path) -> None:
    asked = RegistrumCallback("p", store=target.store, checkpoints=None, log_samples=3)
    trainer(tmp_path / "a", [asked], max_epochs=1).fit(Regressor(), datamodule=Data())
    with registrum.Client(target.store) as client:
        assert [m.key for m in client.media(asked.run_id)] == ["val/samples"]
        table = client.table(asked.run_id, "val/samples", 4)
        assert set(table) == {"prediction", "target", "input"}
        assert len(table["input"]) == 3 and table["input"][0].startswith("[")
    quiet = RegistrumCallback("p", store=target.store, checkpoints=None)
    trainer(tmp_path / "b", [quiet], max_epochs=1).fit(Regressor(), datamodule=Data())
    assert target.reader.list_media(quiet.run_id) == []
    with pytest.raises(ValueError, match="log_samples must be a positive int"):
        RegistrumCallback("p", log_samples=0)
