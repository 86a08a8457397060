import os
import subprocess
import sys
from pathlib import Path

import registrum
from polling import wait_for
from targets import Target

SCRIPT = """
import sys, registrum
run = registrum.init(project="p", name="captured", store=sys.argv[1] if len(sys.argv) > 1 else None)
run.log({"x": 1.0})
run.finish()
print(run.id)
"""


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_environment_and_code_are_recorded(target: Target, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text(SCRIPT + "# tuned\n")  # uncommitted change
    env = {**os.environ, "REGISTRUM_HOME": str(target.home)}
    args = [sys.executable, str(repo / "train.py")] + ([target.store] if target.store else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=True)
    run_id = out.stdout.split()[-1]

    environment = target.reader.get_environment(run_id)
    assert environment["python"]["version"].startswith(f"{sys.version_info.major}.")
    assert "numpy" in environment["packages"]
    assert environment["command"][0].endswith("train.py")
    with registrum.Client(store=target.store) as client:
        assert client.environment(run_id) == environment
    code = target.reader.get_code_version(run_id)
    assert code["commit"] == git(repo, "rev-parse", "HEAD")
    assert code["branch"] == "main" and code["dirty"] is True
    diff = b"".join(target.reader.read_blob(code["diff_sha256"])).decode()
    assert "+# tuned" in diff


def test_capture_can_be_switched_off(target: Target) -> None:
    with registrum.init(
        project="p", store=target.store, capture_environment=False, capture_code=False
    ) as run:
        run.log({"x": 1.0})
    assert target.reader.get_environment(run.id) is None
    assert target.reader.get_code_version(run.id) is None
    with registrum.Client(store=target.store) as client:
        assert client.environment(run.id) is None


def test_system_metrics_are_sampled_when_asked(target: Target) -> None:
    def sampled(run_id: str) -> int:
        rss = target.reader.get_run(run_id).metrics.get("system/rss_mb")
        return 0 if rss is None else rss.count

    with registrum.init(project="p", store=target.store, system_metrics=0.1) as run:
        wait_for(lambda: sampled(run.id) >= 2, "two system samples to reach the store")
    metrics = target.reader.get_run(run.id).metrics
    assert metrics["system/rss_mb"].count >= 2 and metrics["system/rss_mb"].last > 0
