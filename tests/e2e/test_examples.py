import os
import subprocess
import sys
from pathlib import Path

from registrum.server import Settings
from serving import running_server

ROOT = Path(__file__).resolve().parents[2]


def run_example(args: list[str], home: Path) -> str:
    env = {**os.environ, "REGISTRUM_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "store_quickstart.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_quickstart_on_the_embedded_store(tmp_path: Path) -> None:
    out = run_example([], tmp_path)
    assert "registered quickstart-model version 1 as @candidate" in out
    assert (tmp_path / "registrum.db").exists()
    # A second run registers the next version into the same store.
    assert "version 2" in run_example([], tmp_path)


def test_quickstart_against_a_server(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        out = run_example([url], tmp_path / "home")
    assert "registered quickstart-model version 1 as @candidate" in out
    assert not (tmp_path / "home" / "registrum.db").exists()
