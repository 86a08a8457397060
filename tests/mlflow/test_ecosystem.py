"""The MLflow loggers of the ecosystem, unchanged, against a Registrum server: Lightning's
`MLFlowLogger`, Optuna's `MLflowCallback`, Hugging Face's `MLflowCallback` and
`mlflow.sklearn.autolog()`. What they log must land as Registrum data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow_reading import runs_of


# Lightning's and torch's own warnings about their internals (as in tests/integrations/lightning).
@pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)
@pytest.mark.filterwarnings(r"ignore:The '\w+_dataloader' does not have many workers:UserWarning")
def test_lightning_mlflow_logger_with_checkpoints(
    mlflow_server: Any, mlflow_uri: str, tmp_path: Path
) -> None:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import MLFlowLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(3, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    logger = MLFlowLogger(
        experiment_name="lightning-mlflow", tracking_uri=mlflow_uri, log_model=True
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        log_every_n_steps=1,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Tiny(), data)

    with runs_of(mlflow_server, "lightning-mlflow") as (store, runs):
        (run,) = runs
        assert run.status == "finished"
        assert run.params["lr"] in ("0.05", 0.05)
        history = store.metric_history(run.id, "train_loss")
        assert len(history.steps) == 8  # 4 batches x 2 epochs, every step logged
        files = [f.path for f in store.list_run_files(run.id)]
        assert any(p.endswith(".ckpt") for p in files), files


# optuna-integration marks MLflowCallback deprecated (a FutureWarning); users still run it.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_optuna_mlflow_callback(mlflow_server: Any, mlflow_uri: str) -> None:
    import optuna
    from optuna_integration.mlflow import MLflowCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callback = MLflowCallback(tracking_uri=mlflow_uri, metric_name="loss")
    study = optuna.create_study(study_name="optuna-mlflow", direction="minimize")
    study.optimize(
        lambda trial: (trial.suggest_float("x", -2, 2) - 1) ** 2,
        n_trials=3,
        callbacks=[callback],
    )

    with runs_of(mlflow_server, "optuna-mlflow") as (_, runs):
        assert len(runs) == 3
        by_name = {r.name: r for r in runs}
        assert set(by_name) == {"0", "1", "2"}
        for trial in study.trials:
            run = by_name[str(trial.number)]
            assert run.status == "finished"
            assert float(run.params["x"]) == pytest.approx(trial.params["x"])
            assert run.metrics["loss"].last == pytest.approx(trial.value)
            assert run.tags["direction"] == "MINIMIZE"


def test_transformers_mlflow_callback(
    mlflow_server: Any, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf-mlflow")
    monkeypatch.setenv("HF_MLFLOW_LOG_ARTIFACTS", "0")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    examples = [
        {
            "input_ids": torch.randint(0, 32, (8,)),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": torch.tensor(i % 2),
        }
        for i in range(16)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_train_epochs=1,
        logging_steps=1,
        save_strategy="no",
        report_to=["mlflow"],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=examples).train()

    with runs_of(mlflow_server, "hf-mlflow") as (store, runs):
        (run,) = runs
        assert run.status == "finished"
        assert run.params["num_hidden_layers"] in ("1", 1)
        history = store.metric_history(run.id, "loss")
        assert list(history.steps) == [1, 2, 3, 4]


# MLflow warns about its own input-example type inference (and autolog turns any exception
# into a skipped step, so under `filterwarnings = error` the warning would cut it short).
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType")
def test_sklearn_autolog_ends_finished(mlflow_server: Any, mlflow_uri: str) -> None:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog()
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(40, 3))
        y = (x[:, 0] > 0).astype(int)
        # autolog starts and ends its own run around fit()
        model = LogisticRegression(C=0.5).fit(x, y)
        last = mlflow.last_active_run()
        assert last is not None
        run_id = last.info.run_id
        # After the run ends, score() logs into the FINISHED run (MLflow accepts it).
        model.score(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)

    finished = mlflow.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["C"] == "0.5"
    assert "training_score" in finished.data.metrics
    assert any(k.startswith("LogisticRegression_score") for k in finished.data.metrics), (
        finished.data.metrics
    )
    with runs_of(mlflow_server, "autolog") as (store, runs):
        (run,) = runs
        assert run.id == run_id
        assert run.status == "finished"
        assert run.tags["mlflow.autologging"] == "sklearn"
        models = [a for a in store.list_artifacts("autolog", run_id=run_id) if a.type == "model"]
        assert len(models) == 1
