import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lineage import check_evaluation_lineage
from registrum.client.names import run_name
from targets import Target

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from registrum_keras import RegistrumCallback, load_model  # noqa: E402

import registrum  # noqa: E402

# TensorFlow's tensors predate NumPy 2's `copy` keyword; Keras's saving warns through them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

Data = tuple[np.ndarray, np.ndarray]


class BatchRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    """What Keras hands callbacks after each training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[dict[str, float]] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.batches.append(dict(logs or {}))


class FailAt(keras.callbacks.Callback):  # type: ignore[misc]
    """A user callback that raises at the end of epoch `epoch`."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch == self.epoch:
            raise RuntimeError("the user's callback broke")


class Unsaveable(keras.layers.Layer):  # type: ignore[misc]
    """A layer whose config holds an object Keras cannot serialize, so the model cannot
    be saved: a failure inside the callback that does not come from Registrum."""

    def __init__(self, rng: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = rng

    def call(self, x: Any) -> Any:
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rng": self.rng}


def history_of(target: Target, run_id: str, key: str) -> tuple[list[int], list[float]]:
    series = target.reader.metric_history(run_id, key)
    return [int(s) for s in series.steps], [float(x) for x in series.values]


def test_params_are_the_configured_ones(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    model = make_model(
        keras.optimizers.Adam(learning_rate=0.02, beta_1=0.8, weight_decay=0.001),
        metrics=["mae", keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    callback = RegistrumCallback(
        "p", store=target.store, name="first", config={"seed": 0}, tags={"team": "ml"}
    )
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0)
    run = target.reader.get_run(callback.run_id)
    assert (run.project, run.name, run.status, run.tags) == (
        "p",
        "first",
        "finished",
        {"team": "ml"},
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert run.params == {
        "seed": 0,
        "epochs": 2,
        "steps": 3,
        "batch_size": 16,
        "validation_split": 0.25,
        "validation_freq": 1,
        "initial_epoch": 0,
        "shuffle": True,
        "optimizer.class": "Adam",
        "optimizer.learning_rate": pytest.approx(0.02),
        "optimizer.beta_1": 0.8,
        "optimizer.beta_2": 0.999,
        "optimizer.epsilon": 1e-07,
        "optimizer.amsgrad": False,
        "optimizer.weight_decay": 0.001,
        "optimizer.use_ema": False,
        "optimizer.ema_momentum": 0.99,
        "loss": "mse",
        "metrics": ["mae", "rmse"],
        "model.class": "Sequential",
        "model.name": "tiny",
        "model.layers": [
            {"name": "hidden", "class": "Dense", "params": 40},
            {"name": "out", "class": "Dense", "params": 9},
        ],
        "model.params.total": model.count_params(),
        "model.params.trainable": trainable,
        "model.params.non_trainable": 0,
        "keras.version": keras.__version__,
        "keras.backend": keras.backend.backend(),
    }


def test_metric_series_equal_what_keras_logged(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    recorder = BatchRecorder()
    callback = RegistrumCallback("p", store=target.store, log_batches_every=2, checkpoints=None)
    history = make_model().fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        validation_split=0.25,
        callbacks=[recorder, callback],
        verbose=0,
    )
    for key, values in history.history.items():
        assert history_of(target, callback.run_id, key) == ([0, 1, 2], values), key
    steps, rates = history_of(target, callback.run_id, "learning_rate")
    assert steps == [0, 1, 2] and rates == [float(np.float32(0.01))] * 3
    assert len(recorder.batches) == 18  # 48 training samples in batches of 8, 3 epochs
    logged = list(range(0, 18, 2))
    for key in ("loss", "mae"):
        expected = [recorder.batches[i][key] for i in logged]
        assert history_of(target, callback.run_id, f"batch/{key}") == (logged, expected), key


def test_the_registered_version_reloads_and_predicts_like_the_trained_model(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    model = make_model()
    callback = RegistrumCallback(
        "p", store=target.store, register_as="tiny", aliases=["candidate", "staging"]
    )
    history = model.fit(
        x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
    )
    version = target.reader.get_model_version("tiny@candidate")
    assert (version.version, version.flavor, version.run_id) == (1, "keras", callback.run_id)
    assert sorted(version.aliases) == ["candidate", "staging"]
    final = {key: values[-1] for key, values in history.history.items()}
    best = min(history.history["val_loss"])
    rate = float(np.float32(0.01))
    assert version.metrics == {**final, "learning_rate": rate, "best_val_loss": best}
    assert version.params["optimizer.class"] == "Adam"
    assert version.signature == {
        "inputs": [{"name": model.inputs[0].name, "shape": [None, 4], "dtype": "float32"}],
        "outputs": [{"name": model.outputs[0].name, "shape": [None, 1], "dtype": "float32"}],
    }
    assert version.artifact.metadata["best_epoch"] == history.history["val_loss"].index(best)

    loaded = load_model("tiny@candidate", store=target.store)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert type(loaded.optimizer).__name__ == "Adam" and loaded.loss == "mse"
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )


@pytest.mark.parametrize("checkpoints", ["best", "all", None])
def test_checkpoints_are_uploaded_as_asked(
    target: Target, data: Data, make_model: Callable[..., Any], checkpoints: str | None
) -> None:
    x, y = data
    callback = RegistrumCallback("p", store=target.store, checkpoints=checkpoints)
    model = make_model(keras.optimizers.Adam(0.3))  # steps too big: val_loss goes up and down
    history = model.fit(
        x, y, epochs=6, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
    )
    val_loss = history.history["val_loss"]
    improved = [e for e, value in enumerate(val_loss) if value < min(val_loss[:e], default=np.inf)]
    uploaded = target.reader.list_artifacts(
        "p", name="checkpoints", run_id=callback.run_id, include_deleted=True
    )
    steps = sorted(a.metadata["step"] for a in uploaded)
    if checkpoints == "best":
        assert 1 < len(improved) < 6  # the scenario has improving and other epochs
        # Short epochs: improvements are written within a share of the fit's time, and
        # the best at the latest at train end; each new best replaced the one before.
        assert set(steps) <= set(improved) and improved[-1] in steps
        kept = target.reader.list_artifacts("p", name="checkpoints", run_id=callback.run_id)
        assert [a.metadata["step"] for a in kept] == [improved[-1]]
        uploaded = kept
    else:
        assert steps == {"all": list(range(6)), None: []}[checkpoints]
    for listed in uploaded:
        artifact = target.reader.get_artifact("p", "checkpoints", listed.version)
        step = artifact.metadata["step"]
        assert artifact.type == "checkpoint"
        assert [f.path for f in artifact.files] == [f"epoch-{step:04d}.keras"]
        assert artifact.metadata["metrics"]["val_loss"] == val_loss[step]


@pytest.mark.parametrize("share", [0.0, 1e9], ids=["deferred", "at-once"])
def test_best_checkpoints_hold_the_weights_of_their_epoch(
    target: Target,
    data: Data,
    make_model: Callable[..., Any],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    share: float,
) -> None:
    """With no time to spare every improvement waits in memory, and the best is
    written at train end from its snapshot (the model keeps its final weights); with time
    to spare each improvement is written at once."""
    from registrum_keras import _checkpoints

    monkeypatch.setattr(_checkpoints, "CHECKPOINT_SHARE", share)
    x, y = data
    weights: dict[int, list[Any]] = {}
    remember = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: weights.__setitem__(epoch, model.get_weights())
    )
    callback = RegistrumCallback("p", store=target.store)
    model = make_model(keras.optimizers.Adam(0.3))
    history = model.fit(
        x,
        y,
        epochs=6,
        batch_size=16,
        validation_split=0.25,
        callbacks=[remember, callback],
        verbose=0,
    )
    val_loss = history.history["val_loss"]
    improved = [e for e, value in enumerate(val_loss) if value < min(val_loss[:e], default=np.inf)]
    assert improved[-1] != 5  # the best is not the last epoch: written from its snapshot
    for a, b in zip(model.get_weights(), weights[5], strict=True):
        np.testing.assert_array_equal(a, b)  # the final weights are back in the model
    every = target.reader.list_artifacts(
        "p", name="checkpoints", run_id=callback.run_id, include_deleted=True
    )
    steps = sorted(a.metadata["step"] for a in every)
    assert steps == (improved if share else [improved[-1]])
    # The run keeps its current best: each improvement replaced the one before.
    uploaded = target.reader.list_artifacts("p", name="checkpoints", run_id=callback.run_id)
    assert [a.metadata["step"] for a in uploaded] == [improved[-1]]
    with registrum.Client(target.store) as client:
        for listed in uploaded:
            folder = client.download_artifact(
                "p", "checkpoints", tmp_path / str(listed.version), version=listed.version
            )
            step = listed.metadata["step"]
            saved = keras.saving.load_model(folder / f"epoch-{step:04d}.keras")
            for a, b in zip(saved.get_weights(), weights[step], strict=True):
                np.testing.assert_array_equal(a, b)


def test_a_checkpoint_is_a_loadable_keras_model(
    target: Target, data: Data, make_model: Callable[..., Any], tmp_path: Any
) -> None:
    x, y = data
    callback = RegistrumCallback("p", store=target.store, checkpoints="all")
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0)
    with registrum.Client(target.store) as client:
        folder = client.download_artifact("p", "checkpoints", tmp_path)
    restored = keras.saving.load_model(folder / "epoch-0000.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_learning_rate_schedule_is_captured(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    callback = RegistrumCallback("p", store=target.store, checkpoints=None)
    make_model(keras.optimizers.SGD(schedule, momentum=0.9)).fit(
        x, y, epochs=3, batch_size=16, callbacks=[callback], verbose=0
    )
    run = target.reader.get_run(callback.run_id)
    assert {k: x for k, x in run.params.items() if k.startswith("optimizer.")} == {
        "optimizer.class": "SGD",
        "optimizer.momentum": 0.9,
        "optimizer.nesterov": False,
        "optimizer.use_ema": False,
        "optimizer.ema_momentum": 0.99,
        "optimizer.learning_rate.class": "ExponentialDecay",
        "optimizer.learning_rate.initial_learning_rate": 0.1,
        "optimizer.learning_rate.decay_steps": 4,
        "optimizer.learning_rate.decay_rate": 0.5,
        "optimizer.learning_rate.staircase": False,
    }
    steps, rates = history_of(target, callback.run_id, "learning_rate")
    # The rate at the end of epoch e, after 4 steps per epoch: what the next step uses.
    assert steps == [0, 1, 2]
    assert rates == pytest.approx([0.1 * 0.5 ** (e + 1) for e in range(3)], rel=1e-6)


def test_it_joins_the_active_run_and_leaves_it_open(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    callback = RegistrumCallback("ignored", checkpoints=None)
    with registrum.init(project="p", store=target.store, config={"seed": 1}) as run:
        model = make_model()
        model.fit(x, y, epochs=2, batch_size=16, callbacks=[callback], verbose=0)
        assert callback.run_id == run.id and registrum.active_run() is run
        run.log({"test_loss": model.evaluate(x, y, verbose=0)[0]}, step=2)
    stored = target.reader.get_run(run.id)
    assert stored.project == "p" and stored.status == "finished"
    assert stored.params["seed"] == 1 and stored.params["epochs"] == 2
    assert {"loss", "test_loss"} <= set(stored.metrics)
    artifacts = target.reader.list_artifacts("p", run_id=run.id)
    assert [a.name for a in artifacts] == [f"{run.name}-model"]  # named after the run


def test_a_fit_that_raises_leaves_its_run_failed(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    callback = RegistrumCallback("p", store=target.store, checkpoints=None)
    model = make_model()
    with pytest.raises(RuntimeError, match="the user's callback broke"):
        model.fit(x, y, epochs=3, batch_size=16, callbacks=[callback, FailAt(1)], verbose=0)
    broken = callback.run_id
    model.fit(x, y, epochs=1, batch_size=16, callbacks=[callback], verbose=0)
    assert callback.run_id != broken
    assert target.reader.get_run(broken).status == "failed"
    assert target.reader.get_run(broken).metrics["loss"].count == 2
    assert target.reader.get_run(callback.run_id).status == "finished"


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_a_failure_inside_the_callback_is_a_warning_and_fit_goes_on(
    target: Target, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGISTRUM_STRICT")
    x, y = data
    model = keras.Sequential(
        [keras.Input((4,)), Unsaveable(np.random.default_rng(0)), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    callback = RegistrumCallback("p", store=target.store, checkpoints="all")
    with pytest.warns(RuntimeWarning) as caught:
        history = model.fit(
            x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
        )
    assert len(history.history["loss"]) == 3
    ours = [str(w.message) for w in caught if w.category is RuntimeWarning]
    messages = sorted(message.split(";")[0] for message in ours)
    assert messages == [
        "registrum: RegistrumCallback.on_epoch_end failed",  # once, not at every epoch
        "registrum: RegistrumCallback.on_train_end failed",
    ]
    assert all("Cannot serialize" in message for message in ours)
    run = target.reader.get_run(callback.run_id)
    assert run.status == "finished" and run.metrics["loss"].count == 3


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_strict_mode_raises_and_fails_the_run(target: Target, data: Data) -> None:
    x, y = data
    model = keras.Sequential(
        [keras.Input((4,)), Unsaveable(np.random.default_rng(0)), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    callback = RegistrumCallback("p", store=target.store, checkpoints="all")
    with pytest.raises(TypeError, match="Cannot serialize"):
        model.fit(
            x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
        )
    run = target.reader.get_run(callback.run_id)
    assert run.status == "failed" and run.metrics["loss"].count == 1
    assert registrum.active_run() is None


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"checkpoints": "last"}, "checkpoints must be one of"),
        ({"mode": "up"}, "mode must be one of"),
        ({"log_batches_every": 0}, "log_batches_every must be a positive int"),
        ({"aliases": "champion"}, "aliases must be a list"),
        ({"aliases": ["not an alias!"]}, "alias"),
        ({"register_as": "a/b"}, "model name"),
        ({"monitor": "val_score"}, "cannot tell whether 'val_score'"),
        ({"nmae": "typo"}, "unexpected keyword argument 'nmae'"),
    ],
)
def test_bad_arguments_raise_at_construction(options: dict[str, Any], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        RegistrumCallback("p", **options)


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_copies_carry_the_options_only(
    target: Target, data: Data, make_model: Callable[..., Any]
) -> None:
    x, y = data
    callback = RegistrumCallback(
        "p", store=target.store, checkpoints=None, monitor="val_mae", register_as="tiny"
    )
    make_model().fit(
        x, y, epochs=1, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
    )
    for copied in (copy.deepcopy(callback), pickle.loads(pickle.dumps(callback))):
        assert copied.run_id is None and copied.model is None
        assert (copied.monitor, copied.tracking.register_as, copied.tracking.run_options) == (
            "val_mae",
            "tiny",
            {"store": target.store},
        )
        make_model().fit(
            x, y, epochs=1, batch_size=16, validation_split=0.25, callbacks=[copied], verbose=0
        )
        assert copied.run_id not in (None, callback.run_id)
    assert [v.version for v in target.reader.list_model_versions("tiny")] == [3, 2, 1]


def test_without_batch_logging_keras_is_handed_no_batch_hook_of_its_own() -> None:
    """Keras calls every callback's batch hook at every batch: without `log_batches_every`
    it gets the base class's, which does nothing, also in a copy of the callback."""
    quiet = RegistrumCallback("p")
    for callback in (quiet, copy.deepcopy(quiet), pickle.loads(pickle.dumps(quiet))):
        assert callback.on_train_batch_end.__func__ is keras.callbacks.Callback.on_train_batch_end
    batched = RegistrumCallback("p", log_batches_every=3)
    for callback in (batched, pickle.loads(pickle.dumps(batched))):
        assert callback.on_train_batch_end.__func__ is RegistrumCallback.on_train_batch_end


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_load_model_refuses_another_flavor(target: Target, tmp_path: Any) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x00" * 10)
    with registrum.init(project="p", store=target.store) as run:
        run.register_model("raw", path=weights, flavor="bytes")
    with pytest.raises(
        ValueError, match="raw@1 is a 'bytes' model, not one RegistrumCallback logged"
    ):
        load_model("raw", store=target.store)


def test_a_loaded_version_is_in_the_evaluation_runs_lineage_online_and_offline(
    target: Target, data: Data, make_model: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = data
    callback = RegistrumCallback("p", store=target.store, checkpoints=None, register_as="used")
    make_model().fit(x, y, epochs=1, batch_size=16, callbacks=[callback], verbose=0)
    run = target.reader.get_run(callback.run_id)
    assert run.job_type == "train" and run.name == run_name(run.id)
    check_evaluation_lineage(target, "used@1", load_model, monkeypatch)
