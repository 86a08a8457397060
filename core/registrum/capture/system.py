"""System metrics sampled in the background while a run trains: CPU, memory, GPUs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["SystemSampler"]

logger = logging.getLogger("registrum")

_NVIDIA_SMI_TIMEOUT_S = 2.0
_NVIDIA_SMI_MAX_FAILURES = 3
_MB = 1024 * 1024


class SystemSampler:
    """Samples CPU, memory and GPU use on a daemon thread.

    Each sample is a dict of floats passed to ``on_sample``:

    * ``system/cpu_percent``: the whole host's CPU use, 0-100 (Linux only).
    * ``system/process_cpu_percent``: this process's CPU use, in percent of one
      core (above 100 when several cores are busy).
    * ``system/rss_mb``: this process's resident memory (Linux only).
    * ``system/memory_percent``: the host's memory in use (Linux only).
    * ``system/gpu{i}_util``, ``system/gpu{i}_memory_mb``,
      ``system/gpu{i}_memory_percent``: per GPU from nvidia-smi, numbered as
      nvidia-smi numbers them (all GPUs, whatever ``CUDA_VISIBLE_DEVICES`` says).
    * ``system/cuda{i}_allocated_mb``: memory torch has allocated on CUDA device
      ``i`` (torch's numbering), only when the program already imported torch
      and initialised CUDA.

    Nothing raises into the caller: a source that fails is logged once at
    warning level, and a callback that raises is logged once and called again
    next time.

    Args:
        on_sample: Called from the sampling thread with each sample.
        interval: Seconds between samples.

    Raises:
        ValueError: ``interval`` is not positive.
    """

    def __init__(
        self, on_sample: Callable[[dict[str, float]], None], *, interval: float = 10.0
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self._on_sample = on_sample
        self._interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._smi_failures = 0
        self._lock = threading.Lock()  # sample() may also be called from the caller's thread
        self._last_cpu_times = _process_cpu_seconds(), time.monotonic()
        self._last_host = _host_cpu_ticks()

    def start(self) -> None:
        """Start sampling; the first sample comes one interval later. No-op if running."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._last_cpu_times = _process_cpu_seconds(), time.monotonic()
        self._last_host = _host_cpu_ticks()
        self._thread = threading.Thread(
            target=self._loop, name="registrum-system-sampler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop sampling and wait for the thread to end.

        Args:
            timeout: Most seconds to wait for the thread (an nvidia-smi call in
                flight can take up to two); None waits for as long as it takes.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def sample(self) -> dict[str, float]:
        """Take one sample now (CPU percentages cover the time since the last one)."""
        with self._lock:
            return self._sample()

    def _sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, source in (
            ("cpu", self._cpu),
            ("memory", _memory),
            ("nvidia-smi", self._nvidia_smi),
            ("torch", _torch_cuda),
        ):
            try:
                values.update(source())
            except Exception as exc:  # one failing source must not stop the others
                self._warn_once(name, exc)
        return values

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            values = self.sample()
            if not values:
                continue
            try:
                self._on_sample(values)
            except Exception as exc:  # the caller's callback must not kill sampling
                self._warn_once("callback", exc)

    def _warn_once(self, source: str, exc: Exception) -> None:
        if source not in self._warned:
            self._warned.add(source)
            logger.warning(
                "registrum: system metrics from %s failed (logged once): %s", source, exc
            )

    def _cpu(self) -> dict[str, float]:
        values = {}
        cpu, now = _process_cpu_seconds(), time.monotonic()
        last_cpu, last_now = self._last_cpu_times
        self._last_cpu_times = cpu, now
        if now > last_now:
            values["system/process_cpu_percent"] = 100.0 * (cpu - last_cpu) / (now - last_now)
        host = _host_cpu_ticks()
        if host is not None and self._last_host is not None:
            busy = host[0] - self._last_host[0]
            total = host[1] - self._last_host[1]
            if total > 0:
                values["system/cpu_percent"] = 100.0 * busy / total
        self._last_host = host
        return values

    def _nvidia_smi(self) -> dict[str, float]:
        if self._smi_failures >= _NVIDIA_SMI_MAX_FAILURES or shutil.which("nvidia-smi") is None:
            return {}
        try:
            values = _query_nvidia_smi()
        except Exception:
            self._smi_failures += 1  # a broken driver is not asked forever
            raise
        self._smi_failures = 0
        return values


def _process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _host_cpu_ticks() -> tuple[int, int] | None:
    """Busy and total jiffies of all CPUs from /proc/stat; None where it is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest
    # time is already counted in user and nice.
    total = sum(fields[:8])
    idle = sum(fields[3:5])
    return total - idle, total


def _memory() -> dict[str, float]:
    values = {}
    rss = _proc_field("/proc/self/status", "VmRSS:")
    if rss is not None:
        values["system/rss_mb"] = rss / 1024
    total = _proc_field("/proc/meminfo", "MemTotal:")
    available = _proc_field("/proc/meminfo", "MemAvailable:")
    if total and available is not None:
        values["system/memory_percent"] = 100.0 * (total - available) / total
    return values


def _proc_field(path: str, key: str) -> int | None:
    """The number (in kB) after ``key`` in a /proc file; None where it is missing."""
    try:
        with open(path, encoding="ascii") as file:
            for line in file:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _query_nvidia_smi() -> dict[str, float]:
    result = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=index,utilization.gpu,memory.used,memory.total",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        timeout=_NVIDIA_SMI_TIMEOUT_S,
        check=True,
    )
    values: dict[str, float] = {}
    for line in result.stdout.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4:
            continue
        index, util, used, total = fields
        prefix = f"system/gpu{index}_"
        # A field a GPU does not support reads "[N/A]" or "[Not Supported]".
        for key, text in (("util", util), ("memory_mb", used)):
            number = _number(text)
            if number is not None:
                values[prefix + key] = number
        used_mb, total_mb = _number(used), _number(total)
        if used_mb is not None and total_mb:
            values[prefix + "memory_percent"] = 100.0 * used_mb / total_mb
    return values


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _torch_cuda() -> dict[str, float]:
    # Only a program that already set up CUDA is asked: initialising it here
    # would take GPU memory and break trainers that fork later.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return {}
    return {
        f"system/cuda{i}_allocated_mb": torch.cuda.memory_allocated(i) / _MB
        for i in range(torch.cuda.device_count())
    }
