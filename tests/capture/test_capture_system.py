import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from registrum.capture.system import SystemSampler


class Collector:
    def __init__(self, enough: int) -> None:
        self.samples: list[dict[str, float]] = []
        self.wanted = enough
        self.enough = threading.Event()

    def __call__(self, sample: dict[str, float]) -> None:
        self.samples.append(sample)
        if len(self.samples) >= self.wanted:
            self.enough.set()


def _collect(enough: int = 3) -> list[dict[str, float]]:
    collector = Collector(enough)
    sampler = SystemSampler(collector, interval=0.05)
    sampler.start()
    try:
        assert collector.enough.wait(10)
    finally:
        sampler.stop()
    return collector.samples


def _fake_nvidia_smi(folder: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(autouse=True)
def _no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def test_collects_samples_in_the_background() -> None:
    samples = _collect()
    assert len(samples) >= 3
    for sample in samples:
        assert all(key.startswith("system/") for key in sample)
        assert all(isinstance(value, float) for value in sample.values())
        assert sample["system/process_cpu_percent"] >= 0
        if sys.platform.startswith("linux"):
            assert sample["system/rss_mb"] > 1
            assert 0 <= sample["system/cpu_percent"] <= 100
            assert 0 < sample["system/memory_percent"] <= 100


def test_process_cpu_reflects_work() -> None:
    sampler = SystemSampler(lambda sample: None, interval=1)
    sampler.sample()
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        pass
    assert sampler.sample()["system/process_cpu_percent"] > 10


def test_stop_joins_and_start_is_idempotent() -> None:
    sampler = SystemSampler(lambda sample: None, interval=0.05)
    sampler.stop()
    sampler.start()
    sampler.start()
    names = [t.name for t in threading.enumerate()]
    assert names.count("registrum-system-sampler") == 1
    sampler.stop()
    assert "registrum-system-sampler" not in [t.name for t in threading.enumerate()]


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        SystemSampler(lambda sample: None, interval=0)


def test_gpus_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_nvidia_smi(
        tmp_path, "echo '0, 87, 40000, 81559'\necho '1, [N/A], 100, 1000'", monkeypatch
    )
    sample = SystemSampler(lambda sample: None).sample()
    assert sample["system/gpu0_util"] == 87.0
    assert sample["system/gpu0_memory_mb"] == 40000.0
    assert sample["system/gpu0_memory_percent"] == pytest.approx(100 * 40000 / 81559)
    assert "system/gpu1_util" not in sample
    assert sample["system/gpu1_memory_percent"] == 10.0


def test_failing_source_is_logged_once_and_given_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = tmp_path / "calls"
    _fake_nvidia_smi(tmp_path, f"echo x >> {calls}\nexit 9", monkeypatch)
    with caplog.at_level(logging.WARNING, logger="registrum"):
        # Twice as many samples as failures allowed: one that asked nvidia-smi each time would
        # call it 8 times.
        samples = _collect(enough=8)
    assert len(samples) >= 8
    assert all("system/process_cpu_percent" in sample for sample in samples)
    warnings = [r for r in caplog.records if "nvidia-smi" in r.getMessage()]
    assert len(warnings) == 1
    assert calls.read_text().count("x") == 3  # given up after three failures in a row


def test_a_raising_callback_is_logged_once_and_sampling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def broken(sample: dict[str, float]) -> None:
        calls.append(sample)
        raise RuntimeError("store is down")

    sampler = SystemSampler(broken, interval=0.02)
    with caplog.at_level(logging.WARNING, logger="registrum"):
        sampler.start()
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.stop()
    assert len(calls) >= 3
    assert [r.getMessage() for r in caplog.records].count(
        "registrum: system metrics from callback failed (logged once): store is down"
    ) == 1


def test_torch_memory_when_cuda_is_already_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = SimpleNamespace(
        is_initialized=lambda: True,
        device_count=lambda: 2,
        memory_allocated=lambda i: (i + 1) * 1024 * 1024,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    sample = SystemSampler(lambda sample: None).sample()
    assert sample["system/cuda0_allocated_mb"] == 1.0
    assert sample["system/cuda1_allocated_mb"] == 2.0

    cuda.is_initialized = lambda: False
    assert "system/cuda0_allocated_mb" not in SystemSampler(lambda sample: None).sample()


def test_capture_modules_import_no_framework() -> None:
    code = (
        "import sys\n"
        "import registrum.capture.environment, registrum.capture.git\n"
        "import registrum.capture.fingerprint, registrum.capture.system\n"
        "print([m for m in ('numpy', 'pandas', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
