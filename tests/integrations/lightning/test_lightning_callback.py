import copy
import csv
import math
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning", reason="needs lightning: pip install -e .[all]")

import registrum_lightning
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning_models import Data, Regressor, trainer
from registrum_lightning import RegistrumCallback, load_model

import registrum
from lineage import check_evaluation_lineage
from registrum.capture.fingerprint import fingerprint
from registrum.client.http import HttpStore
from registrum.client.names import run_name
from serving import free_port, server_process
from targets import Target, sync

STEPS_PER_EPOCH = 4  # 64 samples in batches of 16


def logged_by_lightning(logger: CSVLogger) -> dict[str, dict[int, float]]:
    """What Lightning handed its loggers: {key: {step: value}} from a CSVLogger's file."""
    series: dict[str, dict[int, float]] = {}
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            step = int(row.pop("step"))
            for key, value in row.items():
                if value != "":
                    series.setdefault(key, {})[step] = float(value)
    return series


def stored(reader: Any, run_id: str, key: str) -> dict[int, float]:
    history = reader.metric_history(run_id, key)
    return dict(zip(history.steps.tolist(), history.values.tolist(), strict=True))


def runs_of(reader: Any, project: str) -> list[Any]:
    return list(reader.search_runs(project).items)


def versions(reader: Any, project: str, name: str, *, deleted: bool = False) -> list[Any]:
    """The live versions of an artifact (with `deleted`, the deleted ones too), oldest first."""
    found = reader.list_artifacts(project, name=name, include_deleted=deleted)
    return sorted(found, key=lambda a: a.version)


@pytest.fixture
def interrupt_handler() -> Iterator[None]:
    """Lightning ignores Ctrl-C after it catches a KeyboardInterrupt; the handler is put back."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_fit_is_recorded_and_its_model_registered(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(
        project="p", register_as="reg", aliases=["candidate"], store=target.store
    )
    logger = CSVLogger(tmp_path / "csv")
    model, data = Regressor(lr=0.05, hidden=8), Data(n=64, batch_size=16)
    fit = trainer(tmp_path, [callback], logger=logger)
    fit.fit(model, datamodule=data)

    [run] = runs_of(target.reader, "p")
    assert run.id == callback.run_id and run.status == "finished" and run.job_type == "train"
    params = run.params
    assert {k: params[k] for k in ("lr", "hidden", "fail", "n", "batch_size")} == {
        "lr": 0.05,
        "hidden": 8,
        "fail": None,
        "n": 64,
        "batch_size": 16,
    }
    trainer_settings = {k[len("trainer.") :]: x for k, x in params.items() if "trainer." in k}
    assert trainer_settings == {
        "max_epochs": 3,
        "max_steps": -1,
        "precision": "32-true",
        "accumulate_grad_batches": 1,
        "gradient_clip_val": None,
        "gradient_clip_algorithm": None,
        "accelerator": "CPUAccelerator",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "SingleDeviceStrategy",
        "callbacks": ["RegistrumCallback", "ModelCheckpoint"],
        "check_val_every_n_epoch": 1,
        "val_check_interval": 1.0,
        "log_every_n_steps": 1,
    }
    assert params["optimizer"] == "adam"  # the module's hparam, beside what was captured
    assert params["optimizer.class"] == "Adam" and params["optimizer.lr"] == 0.05
    assert params["optimizer.betas"] == [0.9, 0.999] and params["optimizer.weight_decay"] == 1e-4
    assert params["scheduler.class"] == "StepLR" and params["scheduler.interval"] == "step"
    assert params["scheduler.step_size"] == 3 and params["scheduler.gamma"] == 0.5
    count = sum(p.numel() for p in model.parameters())
    assert params["model.parameters"] == params["model.trainable_parameters"] == count
    assert params["model.class"] == "lightning_models.Regressor"

    logged = logged_by_lightning(logger)
    assert set(logged) == {"epoch", "train_loss_step", "train_loss_epoch", "val_loss"}
    assert len(logged["train_loss_step"]) == fit.global_step == 3 * STEPS_PER_EPOCH
    for key, series in logged.items():
        assert stored(target.reader, run.id, key) == series, key
    assert stored(target.reader, run.id, "lr") == {s: 0.05 * 0.5 ** (s // 3) for s in range(12)}

    datasets = {d.name: d for d in target.reader.list_datasets("p")}
    assert sorted(datasets) == ["train.0", "train.1"]
    assert datasets["train.0"].fingerprint == fingerprint(data.x).digest
    assert datasets["train.1"].fingerprint == fingerprint(data.y).digest
    assert datasets["train.0"].rows == 64
    assert params["data.train.class"] == "torch.utils.data.dataset.TensorDataset"
    assert params["data.val.class"] == "lightning_models.PairsDataset"
    assert (params["data.train.length"], params["data.val.length"]) == (64, 16)

    uploaded = versions(target.reader, "p", "checkpoints", deleted=True)
    # with no monitor each checkpoint, written at an epoch's end, is the best so far, and
    # each replaces the one before: the run keeps its current best
    assert [a.metadata["step"] for a in uploaded] == [4, 8, 12]
    assert all(a.run_id == run.id and a.type == "checkpoint" for a in uploaded)
    assert [a.metadata["step"] for a in versions(target.reader, "p", "checkpoints")] == [12]

    version = target.reader.get_model_version("reg@candidate")
    assert (version.version, version.run_id, version.flavor) == (1, run.id, "lightning")
    assert version.artifact.metadata["module_class"] == "lightning_models.Regressor"
    assert version.metrics == {k: float(x) for k, x in fit.callback_metrics.items()}
    assert version.signature == {"inputs": [{"shape": [2, 4], "dtype": "torch.float32"}]}

    with registrum.init(project="p", job_type="evaluation", store=target.store) as evaluation:
        loaded = load_model("reg@candidate")
    assert type(loaded) is Regressor and loaded.hparams == model.hparams
    x = torch.randn(32, 4)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    [used] = target.reader.run_inputs(evaluation.id)
    assert (used["kind"], used["target_id"]) == ("model_version", version.id)


def test_the_best_checkpoint_becomes_the_model(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=2)
    fit = trainer(tmp_path, [callback, checkpoint], max_epochs=4)
    fit.fit(Regressor(lr=0.2), datamodule=Data())

    version = target.reader.get_model_version("reg@latest")
    assert checkpoint.best_model_score is not None
    best = float(checkpoint.best_model_score)
    assert version.artifact.metadata["checkpoint"] == Path(checkpoint.best_model_path).name
    assert version.artifact.metadata["monitor"] == "val_loss"
    assert version.artifact.metadata["score"] == version.metrics["val_loss"] == best
    assert version.metrics["train_loss_epoch"] == float(fit.callback_metrics["train_loss_epoch"])

    loaded = load_model("reg@1", store=target.store)  # no active run: a plain download
    expected = Regressor.load_from_checkpoint(checkpoint.best_model_path)
    x = torch.randn(16, 4)
    with torch.no_grad():
        assert torch.equal(loaded(x), expected(x))


class WithObjects(Regressor):
    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "lr": 0.05,
                "fail": None,
                "activation": torch.nn.ReLU(),
                "class_weights": torch.ones(3),
                "scale": torch.tensor(0.5),
                "sizes": (8, 4),
                "schedule": {"warmup": 2},
            }
        )


# Lightning advises against a module among the hparams: here it is the point.
@pytest.mark.filterwarnings("ignore:Attribute 'activation' is an instance of `nn.Module`")
@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_hparams_that_are_objects_are_recorded_by_what_they_are(
    target: Target, tmp_path: Path
) -> None:
    callback = RegistrumCallback(project="p")
    trainer(tmp_path, [callback], max_epochs=1).fit(WithObjects(), datamodule=Data())
    params = target.reader.get_run(callback.run_id).params
    assert params["activation"] == "torch.nn.modules.activation.ReLU"
    assert params["class_weights"] == "Tensor(shape=[3], dtype=torch.float32)"
    assert (params["scale"], params["sizes"], params["schedule.warmup"]) == (0.5, [8, 4], 2)


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_the_learning_rate_is_recorded_where_it_changes_and_at_logging_steps(
    target: Target, tmp_path: Path
) -> None:
    callback = RegistrumCallback(project="p")
    trainer(tmp_path, [callback], log_every_n_steps=5).fit(Regressor(), datamodule=Data())
    rates = stored(target.reader, callback.run_id, "lr")
    assert sorted(rates) == [0, 3, 4, 6, 9]  # StepLR halves it every 3 steps
    assert rates == {s: 0.05 * 0.5 ** (s // 3) for s in rates}
    assert sorted(stored(target.reader, callback.run_id, "train_loss_step")) == [4, 9]


class EpochScheduled(Regressor):
    """A rate that no scheduler changes (`gamma` None), or one halved every epoch."""

    def __init__(self, gamma: float | None) -> None:
        super().__init__()
        self.gamma = gamma

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=0.05)
        if self.gamma is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
@pytest.mark.parametrize("gamma", [None, 0.5], ids=["constant", "per-epoch"])
def test_rates_that_change_between_epochs_only_are_read_per_epoch(
    target: Target, tmp_path: Path, gamma: float | None
) -> None:
    """No per-batch hook then: the rate of each epoch, at its first step when it changed and
    at the steps Lightning logs at (4 steps an epoch; 5 and 10 are logged)."""
    callback = RegistrumCallback(project="p")
    fit = trainer(tmp_path, [callback], log_every_n_steps=5)
    fit.fit(EpochScheduled(gamma), datamodule=Data())
    assert callback.on_train_batch_start is None  # Lightning did not call it at every batch
    rates = stored(target.reader, callback.run_id, "lr")
    if gamma is None:
        assert rates == {0: 0.05, 4: 0.05, 9: 0.05}
    else:
        assert rates == {0: 0.05, 4: 0.025, 8: 0.0125, 9: 0.0125}
    assert sorted(stored(target.reader, callback.run_id, "train_loss_step")) == [4, 9]


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_load_model_refuses_a_model_of_another_flavor(target: Target, tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"not a checkpoint")
    with registrum.init(project="p") as run:
        run.register_model("other", path=weights, flavor="bytes")
    with pytest.raises(ValueError, match="other@1 is a 'bytes' model"):
        load_model("other@1")


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
@pytest.mark.parametrize("mode", ["all", "last", "best", None])
def test_which_checkpoints_are_uploaded(target: Target, tmp_path: Path, mode: str | None) -> None:
    callback = RegistrumCallback(project="p", checkpoints=mode)
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=-1, save_last=True)
    fit = trainer(tmp_path, [callback, checkpoint], max_epochs=4)
    fit.fit(Regressor(lr=0.2), datamodule=Data())

    by_epoch = sorted(checkpoint.best_k_models.items())  # epoch=0-..., epoch=1-..., ...
    names = [Path(path).name for path, _ in by_epoch]
    scores = [float(score) for _, score in by_epoch]
    expected = {
        "all": [
            pair for n, s in zip(names, scores, strict=True) for pair in [(n, s), ("last.ckpt", s)]
        ],
        "last": [("last.ckpt", s) for s in scores],
        "best": [
            (n, s)
            for i, (n, s) in enumerate(zip(names, scores, strict=True))
            if s < min(scores[:i], default=math.inf)
        ],
        None: [],
    }[mode]
    uploaded = [
        (Path(a.metadata["file"]).name, a.metadata["metrics"]["val_loss"])
        for a in versions(target.reader, "p", "checkpoints", deleted=True)
    ]
    assert uploaded == expected
    assert len(uploaded) == {"all": 8, "last": 4, "best": len(expected), None: 0}[mode]
    kept = [
        (Path(a.metadata["file"]).name, a.metadata["metrics"]["val_loss"])
        for a in versions(target.reader, "p", "checkpoints")
    ]
    # "best" keeps the current best (each new best replaced the one before); else all stay
    assert kept == (expected[-1:] if mode == "best" else expected)
    marked = [a.metadata.get("best", False) for a in versions(target.reader, "p", "checkpoints")]
    assert any(marked) == (mode in ("all", "best"))
    if mode == "all":  # written at each epoch's end
        steps = [a.metadata["step"] for a in versions(target.reader, "p", "checkpoints")]
        assert steps == [4, 4, 8, 8, 12, 12, 16, 16]


def test_the_store_down_for_the_whole_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.2")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "0.5")
    port = free_port()
    callback = RegistrumCallback(
        project="p", register_as="reg", aliases=["candidate"], store=f"http://127.0.0.1:{port}"
    )
    logger = CSVLogger(tmp_path / "csv")
    model = Regressor()
    fit = trainer(tmp_path, [callback], logger=logger)
    fit.fit(model, datamodule=Data())
    run_id = callback.run_id
    assert run_id is not None and (tmp_path / "home" / "spool" / run_id).exists()

    with server_process(tmp_path / "srv", port=port) as server:
        out = sync(tmp_path / "home")
        assert f"run {run_id}" in out.stdout
        reader = HttpStore(server.root)
        run = reader.get_run(run_id)
        series = {key: stored(reader, run_id, key) for key in logged_by_lightning(logger)}
        uploaded = versions(reader, "p", "checkpoints", deleted=True)
        version = reader.get_model_version("reg@candidate")
        reader.close()

    assert run.status == "finished" and run.params["lr"] == 0.05
    assert series == logged_by_lightning(logger)
    assert [a.metadata["step"] for a in uploaded] == [4, 8, 12]
    assert version.run_id == run_id and version.flavor == "lightning"
    assert version.artifact.metadata["module_class"] == "lightning_models.Regressor"


def test_a_failing_hook_is_a_warning_and_training_goes_on(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(trainer: Any) -> dict[str, float]:
        raise RuntimeError("no learning rate today")

    monkeypatch.setattr(registrum_lightning._capture, "learning_rates", broken)
    monkeypatch.setenv("REGISTRUM_STRICT", "0")
    callback = RegistrumCallback(project="p", store=target.store)
    fit = trainer(tmp_path / "lenient", [callback])
    with pytest.warns(RuntimeWarning, match="on_train_batch_start failed.*no learning rate"):
        fit.fit(Regressor(), datamodule=Data())
    assert fit.state.finished and fit.global_step == 12
    run = target.reader.get_run(callback.run_id)
    assert run.status == "finished" and "lr" not in run.metrics
    assert run.metrics["train_loss_step"].count == 12

    monkeypatch.setenv("REGISTRUM_STRICT", "1")  # in tests no failure hides
    strict = RegistrumCallback(project="p", store=target.store)
    with pytest.raises(RuntimeError, match="no learning rate"):
        trainer(tmp_path / "strict", [strict]).fit(Regressor(), datamodule=Data())
    assert target.reader.get_run(strict.run_id).status == "failed"


def test_test_and_validate_after_fit_log_into_the_fits_run(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(project="p", store=target.store)
    model, data = Regressor(), Data()
    fit = trainer(tmp_path, [callback])
    fit.fit(model, datamodule=data)
    [validated] = fit.validate(model, datamodule=data)
    [tested] = fit.test(model, datamodule=data)

    [run] = runs_of(target.reader, "p")
    assert run.id == callback.run_id and run.status == "finished" and run.job_type == "train"
    assert stored(target.reader, run.id, "test_loss") == {12: tested["test_loss"]}
    val_loss = stored(target.reader, run.id, "val_loss")  # the fit's, then validate's
    assert sorted(val_loss) == [3, 7, 11, 12] and val_loss[12] == validated["val_loss"]
    assert sorted(d.name for d in target.reader.list_datasets("p")) == [
        "test.0",
        "test.1",
        "train.0",
        "train.1",
    ]


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_a_test_on_its_own_is_an_evaluation_run_with_a_readable_name(
    target: Target, tmp_path: Path
) -> None:
    callback = RegistrumCallback(project="p", store=target.store)
    trainer(tmp_path, [callback]).test(Regressor(), datamodule=Data())
    [run] = runs_of(target.reader, "p")
    assert run.id == callback.run_id and run.job_type == "evaluation"
    assert run.name == run_name(run.id) and run.status == "finished"


# The resumed fit writes into the first one's checkpoint folder on purpose.
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_resuming_from_a_checkpoint_continues_the_run(target: Target, tmp_path: Path) -> None:
    def checkpoint() -> ModelCheckpoint:
        return ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)

    first = RegistrumCallback(project="p", store=target.store)
    trainer(tmp_path, [first, checkpoint()], max_epochs=2).fit(Regressor(), datamodule=Data())

    second = RegistrumCallback(project="p", store=target.store)
    resumed = trainer(tmp_path, [second, checkpoint()], max_epochs=4)
    resumed.fit(Regressor(), datamodule=Data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")

    evaluation = RegistrumCallback(project="p", store=target.store)
    tester = trainer(tmp_path, [evaluation, checkpoint()])
    tester.test(Regressor(), datamodule=Data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")

    [run] = runs_of(target.reader, "p")
    assert run.id == first.run_id == second.run_id == evaluation.run_id
    assert run.status == "finished" and "test_loss" in run.metrics
    assert sorted(stored(target.reader, run.id, "train_loss_step")) == list(range(16))
    assert sorted(stored(target.reader, run.id, "lr")) == list(range(16))
    assert run.params["trainer.max_epochs"] == 4  # the resumed fit's setting


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_without_checkpoints_the_final_weights_are_the_model(
    target: Target, tmp_path: Path
) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", checkpoints="all")
    model = Regressor()
    trainer(tmp_path, [callback], enable_checkpointing=False).fit(model, datamodule=Data())
    assert target.reader.list_artifacts("p", name="checkpoints") == []
    version = target.reader.get_model_version("reg@1")
    assert version.artifact.metadata["checkpoint"] == "model.ckpt"
    x = torch.randn(8, 4)
    with torch.no_grad():
        assert torch.equal(load_model("reg@1")(x), model.eval()(x))


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_a_module_defined_in_a_function_is_logged_with_a_warning(
    target: Target, tmp_path: Path
) -> None:
    class Local(Regressor):
        pass

    callback = RegistrumCallback(project="p", register_as="local")
    model = Local()
    with pytest.warns(RuntimeWarning, match=r"Local is defined inside a function.*module_class="):
        trainer(tmp_path, [callback], enable_checkpointing=False).fit(model, datamodule=Data())
    version = target.reader.get_model_version("local@1")
    assert version.artifact.metadata["module_class"].endswith("<locals>.Local")
    with pytest.raises(ImportError, match=r"defined inside a function\. Pass the class"):
        load_model("local@1")
    rebuilt = load_model("local@1", module_class=Local)
    x = torch.randn(8, 4)
    with torch.no_grad():
        assert type(rebuilt) is Local and torch.equal(rebuilt(x), model.eval()(x))


MAIN_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from lightning_models import Data, Regressor, trainer
from registrum_lightning import RegistrumCallback

class LitMLP(Regressor):
    pass

callback = RegistrumCallback(project="p", register_as="lit")
trainer(sys.argv[2], [callback], enable_checkpointing=False).fit(LitMLP(), datamodule=Data())
"""


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_a_module_of_the_training_script_warns_at_fit_end_and_loads_with_module_class(
    target: Target, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(MAIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(target.home)
    here = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, str(script), here, str(tmp_path / "fit")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "LitMLP is defined in the script that was run (__main__)" in done.stderr
    assert "load_model(ref, module_class=LitMLP)" in done.stderr
    version = target.reader.get_model_version("lit@1")
    assert version.artifact.metadata["module_class"] == "__main__.LitMLP"
    with pytest.raises(ImportError, match=r"__main__.*module_class=YourModule"):
        load_model("lit@1")

    class LitMLP(Regressor):
        pass

    assert type(load_model("lit@1", module_class=LitMLP)) is LitMLP


def test_a_loaded_version_is_in_the_evaluation_runs_lineage_online_and_offline(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = RegistrumCallback(project="p", register_as="used", store=target.store)
    trainer(tmp_path, [callback], max_epochs=1).fit(Regressor(), datamodule=Data())
    run = target.reader.get_run(callback.run_id)
    assert run.job_type == "train" and run.name == run_name(run.id)
    check_evaluation_lineage(target, "used@1", load_model, monkeypatch)


def test_an_active_run_is_joined_and_left_open(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(project="ignored", store=target.store)
    with registrum.init(project="p", config={"study": "s1"}, store=target.store) as run:
        trainer(tmp_path, [callback]).fit(Regressor(), datamodule=Data())
        assert callback.run_id == run.id and registrum.active_run() is run
        run.log({"after_fit": 1.0}, step=99)
    stored_run = target.reader.get_run(run.id)
    assert stored_run.status == "finished" and stored_run.params["study"] == "s1"
    assert stored_run.params["lr"] == 0.05 and "after_fit" in stored_run.metrics
    assert [project.name for project in target.reader.list_projects()] == ["p"]


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    ("fail", "raised", "status"),
    [("error", RuntimeError, "failed"), ("interrupt", SystemExit, "killed")],
)
def test_a_run_it_started_ends_failed_or_killed(
    target: Target,
    tmp_path: Path,
    interrupt_handler: None,
    fail: str,
    raised: type[BaseException],
    status: str,
) -> None:
    callback = RegistrumCallback(project="p", store=target.store)
    with pytest.raises(raised):
        trainer(tmp_path, [callback]).fit(Regressor(fail=fail), datamodule=Data())
    run = target.reader.get_run(callback.run_id)
    assert run.status == status and run.metrics["train_loss_step"].count == 2


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"checkpoints": "some"}, ValueError, "checkpoints must be one of"),
        ({"register_as": "a/b"}, registrum.InvalidArgument, "model name"),
        ({"aliases": "champion"}, TypeError, "not the string"),
        ({"aliases": ["1st"]}, registrum.InvalidArgument, "alias"),
        ({"learning_rate": 0.1}, TypeError, "learning_rate"),
        ({"project": ""}, registrum.InvalidArgument, "project name"),
        ({"id": "not an id!"}, registrum.InvalidArgument, "run id"),
    ],
)
def test_bad_arguments_raise_at_construction(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RegistrumCallback(**options)


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_copies_and_pickles_hold_options_only(target: Target, tmp_path: Path) -> None:
    parent = registrum.init(project="p", store=target.store)
    callback = RegistrumCallback(project="p", register_as="m", parent=parent, store=target.store)
    parent.finish()
    trainer(tmp_path, [callback], max_epochs=1).fit(Regressor(), datamodule=Data())
    for copied in (copy.deepcopy(callback), pickle.loads(pickle.dumps(callback))):
        tracking = copied.tracking
        assert tracking.run_options == {"parent": parent.id, "store": target.store}
        assert (tracking.project, tracking.register_as, copied.run_id) == (
            "p",
            "m",
            callback.run_id,
        )
        assert tracking.run is None and copied._trainer is None
    assert target.reader.get_run(callback.run_id).parent_id == parent.id


@pytest.mark.slow
@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_ddp_makes_one_run_from_rank_zero(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(project="p", register_as="reg")
    fit = trainer(
        tmp_path, [callback], strategy="ddp_spawn", devices=2, max_epochs=2, log_every_n_steps=1
    )
    fit.fit(Regressor(), datamodule=Data())
    [run] = runs_of(target.reader, "p")
    assert run.status == "finished" and run.params["trainer.strategy"] == "DDPStrategy"
    assert run.params["trainer.devices"] == 2
    # each of the two ranks takes half of every epoch's 4 batches
    assert sorted(stored(target.reader, run.id, "train_loss_step")) == [0, 1, 2, 3]
    assert target.reader.get_model_version("reg@1").run_id == run.id
