import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "lightning", reason="the Lightning example needs lightning: pip install -e .[all]"
)

from targets import Target

ROOT = Path(__file__).resolve().parents[3]


def test_the_example_trains_registers_and_loads_back(target: Target) -> None:
    env = {**os.environ, "REGISTRUM_HOME": str(target.home)}
    env.pop("REGISTRUM_URL", None)
    if target.store is not None:
        env["REGISTRUM_URL"] = target.store
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lightning_example.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "registered lightning-example-regressor version 1 as @candidate" in out.stdout
    assert "predictions" in out.stdout
    version = target.reader.get_model_version("lightning-example-regressor@candidate")
    run = target.reader.get_run(version.run_id)
    assert run.status == "finished" and run.name == "mlp" and run.params["hidden"] == 32
    assert version.metrics["val_loss"] == version.artifact.metadata["score"]
