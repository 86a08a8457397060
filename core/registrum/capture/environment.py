"""The environment a run executes in: Python, OS, hardware, packages, command line."""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["capture_environment"]

_NVIDIA_SMI_TIMEOUT_S = 2.0
# A dist-info folder is named `{name}-{version}.dist-info` with `-` escaped in both
# parts (wheel spec), so reading the name avoids parsing every METADATA file.
_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")


def capture_environment(*, packages: bool = True) -> dict[str, Any]:
    """Describe the process, host and installed software of the current run.

    Every part is captured on its own: a part that fails is recorded as
    ``{"error": "..."}`` and the others are kept, so this never raises.

    Args:
        packages: Whether to list the installed distributions with versions.

    Returns:
        A JSON-serialisable dict with the keys ``python``, ``os``, ``cpu_count``,
        ``memory_bytes``, ``gpus``, ``packages`` (when asked for), ``command``,
        ``entry_script``, ``cwd``, ``hostname`` and ``user``.
    """
    parts: dict[str, Callable[[], Any]] = {
        "python": _python,
        "os": _os,
        "cpu_count": os.cpu_count,
        "memory_bytes": _total_memory,
        "gpus": _gpus,
    }
    if packages:
        parts["packages"] = _packages
    parts.update(
        {
            "command": lambda: list(sys.argv),
            "entry_script": _entry_script,
            "cwd": os.getcwd,
            "hostname": socket.gethostname,
            "user": getpass.getuser,
        }
    )
    return {name: _guarded(part) for name, part in parts.items()}


def _guarded(part: Callable[[], Any]) -> Any:
    try:
        return part()
    except Exception as exc:  # one broken part must not lose the others
        return {"error": f"{type(exc).__name__}: {exc}"}


def _python() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def _os() -> dict[str, str]:
    return {
        "platform": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
    }


def _total_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (OSError, ValueError):
            pass
    return None


def _gpus() -> list[dict[str, Any]]:
    """List GPUs without ever initialising CUDA in this process.

    Initialising CUDA here would cost GPU memory and break trainers that fork
    afterwards (Lightning's ``ddp_fork`` refuses to start), so torch is asked
    only when the program already imported it and already initialised CUDA.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        gpus = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "index": index,
                    "name": str(props.name),
                    "memory_total_mb": int(props.total_memory) // (1024 * 1024),
                    "source": "torch",
                }
            )
        return gpus
    if shutil.which("nvidia-smi") is not None:
        return _nvidia_smi_gpus()
    return []


def _nvidia_smi_gpus() -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        timeout=_NVIDIA_SMI_TIMEOUT_S,
        check=True,
    )
    gpus = []
    for index, line in enumerate(result.stdout.splitlines()):
        if not line.strip():
            continue
        # Split from the right: the two numeric fields never contain commas.
        name, memory, driver = (field.strip() for field in line.rsplit(",", 2))
        gpus.append(
            {
                "index": index,
                "name": name,
                "memory_total_mb": int(float(memory)) if _is_number(memory) else None,
                "driver_version": driver,
                "source": "nvidia-smi",
            }
        )
    return gpus


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _packages() -> dict[str, str]:
    """Map each installed distribution's normalised name to its version.

    The first distribution found on ``sys.path`` wins, as it does for imports. Listed once
    per process (the scan takes a good fraction of a second): later runs get a copy.
    """
    return dict(_installed())


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name_version = _name_version(dist)
        if name_version is None:
            continue
        name, version = name_version
        found.setdefault(_normalise(name), version)
    return dict(sorted(found.items()))


def _name_version(dist: importlib.metadata.Distribution) -> tuple[str, str] | None:
    path = getattr(dist, "_path", None)
    match = _DIST_INFO.match(getattr(path, "name", "") or "")
    if match is not None:
        return match["name"], match["version"]
    metadata = dist.metadata  # parsed once: each access re-reads the file
    name, version = metadata["Name"], metadata["Version"]
    if not name or not version:
        return None
    return str(name), str(version)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_script() -> str | None:
    if sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]):
        return os.path.abspath(sys.argv[0])
    return None
