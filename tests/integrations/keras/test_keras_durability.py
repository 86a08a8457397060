"""A fit while the store is down: training is untouched and everything arrives later."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registrum.client.http import HttpStore
from serving import free_port, server_process
from targets import sync

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from registrum_keras import RegistrumCallback, load_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def test_the_server_down_for_the_whole_fit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: tuple[np.ndarray, np.ndarray],
    make_model: Callable[..., Any],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.2")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "0.5")
    port = free_port()
    x, y = data
    model = make_model()
    callback = RegistrumCallback(
        "p",
        store=f"http://127.0.0.1:{port}",
        register_as="tiny",
        aliases=["candidate"],
        checkpoints="all",
        log_batches_every=1,
    )
    history = model.fit(
        x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0
    )
    assert len(history.history["loss"]) == 3
    assert (home / "spool" / callback.run_id).is_dir()

    with server_process(tmp_path / "srv", port=port) as server:
        sync(home)
        reader = HttpStore(server.root)
        run = reader.get_run(callback.run_id)
        for key, values in history.history.items():
            assert list(reader.metric_history(run.id, key).values) == values, key
        batches = reader.metric_history(run.id, "batch/loss")
        checkpoints = reader.list_artifacts("p", name="checkpoints", run_id=run.id)
        version = reader.get_model_version("tiny@candidate")
        reader.close()
        loaded = load_model("tiny@candidate", store=server.root)
    assert run.status == "finished" and run.params["batch_size"] == 16
    assert list(batches.steps) == list(range(9))
    assert sorted(a.metadata["step"] for a in checkpoints) == [0, 1, 2]
    assert version.run_id == run.id and version.flavor == "keras"
    assert version.metrics["val_loss"] == history.history["val_loss"][-1]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not (home / "spool" / run.id).exists()
