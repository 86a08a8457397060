"""`examples/keras_example.py` runs as users run it: embedded, or against REGISTRUM_URL."""

import pytest

from targets import Target, run_example

pytest.importorskip("keras")
pytest.importorskip("tensorflow")


def test_the_keras_example_trains_registers_and_reloads(target: Target) -> None:
    out = run_example("keras_example.py", target)
    assert "reloaded, it predicts the same: True" in out
    run_id = out.split()[1].rstrip(":")
    run = target.reader.get_run(run_id)
    version = target.reader.get_model_version("keras-example-classifier@candidate")
    assert run.status == "finished" and run.project == "keras-example"
    assert run.metrics["val_accuracy"].count == 8 and run.metrics["val_accuracy"].last > 0.9
    assert version.run_id == run_id and version.flavor == "keras"
