import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from registrum.capture import environment
from registrum.capture.environment import capture_environment


def test_captures_every_part_as_json() -> None:
    env = capture_environment()
    json.dumps(env)
    assert env["python"]["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert env["python"]["executable"] == sys.executable
    assert env["os"]["platform"]
    assert isinstance(env["cpu_count"], int)
    assert env["memory_bytes"] > 0
    assert isinstance(env["gpus"], list)
    assert env["command"] == sys.argv
    assert env["cwd"] == os.getcwd()
    assert env["hostname"]
    for part in env.values():
        assert not (isinstance(part, dict) and "error" in part), part


def test_packages_are_sorted_normalised_and_versioned() -> None:
    packages = capture_environment()["packages"]
    assert list(packages) == sorted(packages)
    assert packages["numpy"] == __import__("numpy").__version__
    assert packages["pytest"] == pytest.__version__
    assert all(name == name.lower() and "_" not in name for name in packages)


def test_packages_can_be_left_out() -> None:
    assert "packages" not in capture_environment(packages=False)


def test_is_fast() -> None:
    capture_environment()
    start = time.perf_counter()
    capture_environment()
    assert time.perf_counter() - start < 0.5


def test_a_failing_part_is_recorded_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise KeyError("no user in this container")

    monkeypatch.setattr(environment.getpass, "getuser", broken)
    env = capture_environment()
    assert env["user"] == {"error": "KeyError: 'no user in this container'"}
    assert env["hostname"]


def test_entry_script_is_absolute_when_argv0_is_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.1"])
    env = capture_environment(packages=False)
    assert env["entry_script"] == str(script)
    assert env["command"] == ["train.py", "--lr", "0.1"]
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert capture_environment(packages=False)["entry_script"] is None


def _fake_nvidia_smi(folder: Path, body: str) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_gpus_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_nvidia_smi(
        tmp_path,
        "echo 'NVIDIA H100 80GB HBM3, 81559, 550.54.15'\necho 'Tesla T4, 15360, 550.54.15'",
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert capture_environment(packages=False)["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_mb": 81559,
            "driver_version": "550.54.15",
            "source": "nvidia-smi",
        },
        {
            "index": 1,
            "name": "Tesla T4",
            "memory_total_mb": 15360,
            "driver_version": "550.54.15",
            "source": "nvidia-smi",
        },
    ]


def test_a_hanging_nvidia_smi_is_an_error_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_nvidia_smi(tmp_path, "exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    start = time.perf_counter()
    gpus = capture_environment(packages=False)["gpus"]
    assert time.perf_counter() - start < 5
    assert "TimeoutExpired" in gpus["error"]


def test_no_gpu_tool_means_no_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert capture_environment(packages=False)["gpus"] == []


def test_does_not_import_frameworks() -> None:
    code = (
        "import sys; from registrum.capture.environment import capture_environment;"
        "capture_environment();"
        "print([m for m in ('numpy', 'torch', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gpus_from_torch_when_cuda_is_already_initialised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    props = SimpleNamespace(name="NVIDIA A100-SXM4-40GB", total_memory=40 * 1024**3)
    cuda = SimpleNamespace(
        is_initialized=lambda: True,
        device_count=lambda: 1,
        get_device_properties=lambda index: props,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    assert capture_environment(packages=False)["gpus"] == [
        {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "memory_total_mb": 40960, "source": "torch"}
    ]


def test_torch_without_initialised_cuda_is_not_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def initialise(index: int) -> None:
        raise AssertionError("capture must not initialise CUDA")

    cuda = SimpleNamespace(
        is_initialized=lambda: False, device_count=lambda: 1, get_device_properties=initialise
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert capture_environment(packages=False)["gpus"] == []
