"""Content fingerprints of datasets: arrays, frames, tensors, lists, files and folders."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from registrum.capture import _arrays
from registrum.capture._digest import SUPPORTED, Fingerprint, start_digest

__all__ = ["Fingerprint", "fingerprint", "hash_file"]

_FILE_CHUNK = 1 << 20


def fingerprint(data: Any) -> Fingerprint:
    """Fingerprint a dataset by its content.

    Arrays are hashed in place when C-contiguous, otherwise in bounded pieces;
    files are streamed. A torch tensor gets the digest of the numpy array with
    the same dtype, shape and values.

    Args:
        data: A numpy array, pandas DataFrame or Series, torch tensor, list or
            tuple (of numbers, strings, None, nested lists, dicts or arrays),
            bytes-like object, or the path of a file or folder.

    Returns:
        The fingerprint.

    Raises:
        FileNotFoundError: ``data`` is a path that does not exist.
        TypeError: ``data`` is of an unsupported type.
    """
    module = type(data).__module__ or ""
    numpy = sys.modules.get("numpy")
    if isinstance(data, (str, os.PathLike)):
        return _path_fingerprint(Path(data))
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _bytes_fingerprint(data)
    if isinstance(data, (list, tuple)):
        return _list_fingerprint(data)
    if numpy is not None and isinstance(data, (numpy.ndarray, numpy.generic)):
        return _arrays.numpy_fingerprint(data)
    if module.startswith("pandas") and type(data).__name__ in ("DataFrame", "Series"):
        return _arrays.pandas_fingerprint(data)
    if module.startswith("torch") and hasattr(data, "detach"):
        return _arrays.torch_fingerprint(data)
    raise TypeError(
        f"cannot fingerprint an object of type {module}.{type(data).__qualname__}; "
        f"supported: {SUPPORTED}"
    )


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Hash a file's content, streamed in 1 MiB pieces.

    Args:
        path: The file.

    Returns:
        The sha256 hex digest of the content and its size in bytes.
    """
    digest = hashlib.sha256()
    buffer = bytearray(_FILE_CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as file:
        while n := file.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


# --- lists and bytes --------------------------------------------------------------


def _list_fingerprint(items: list[Any] | tuple[Any, ...]) -> Fingerprint:
    digest = start_digest("list", {"length": len(items)})
    _arrays.update_canonical(digest, items)
    schema = {
        "type": "list",
        "length": len(items),
        "item_types": sorted({type(item).__name__ for item in items}),
    }
    return Fingerprint(digest.hexdigest(), "list", schema, len(items))


def _bytes_fingerprint(data: bytes | bytearray | memoryview) -> Fingerprint:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B")
    digest = start_digest("bytes", {"length": view.nbytes})
    digest.update(view)
    return Fingerprint(digest.hexdigest(), "bytes", {"length": view.nbytes}, None)


# --- files and folders ------------------------------------------------------------


def _path_fingerprint(path: Path) -> Fingerprint:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, "cannot fingerprint a path that does not exist", str(path)
        ) from None
    if stat.S_ISDIR(mode):
        return _folder_fingerprint(path)
    sha, size = hash_file(path)
    digest = start_digest("file", {"sha256": sha, "size": size})
    schema = {"name": path.name, "bytes": size, "sha256": sha}
    return Fingerprint(digest.hexdigest(), "file", schema, None)


def _folder_fingerprint(root: Path) -> Fingerprint:
    files, links, others = _walk(root)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        hashes = list(pool.map(hash_file, (root / name for name in files)))
    entries: list[tuple[str, list[Any]]] = [
        (name, ["file", sha, size]) for name, (sha, size) in zip(files, hashes, strict=True)
    ]
    entries += [(name, ["symlink", target]) for name, target in links.items()]
    entries += [(name, ["special"]) for name in others]
    entries.sort()
    digest = start_digest("folder", {"entries": len(entries)})
    for name, entry in entries:
        digest.update(json.dumps([name, *entry], separators=(",", ":")).encode() + b"\n")
    schema = {
        "files": len(files),
        "bytes": sum(size for _, size in hashes),
        "symlinks": sorted(links),
    }
    if others:
        schema["skipped"] = sorted(others)
    return Fingerprint(digest.hexdigest(), "folder", schema, None)


def _walk(root: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """Regular files, symlinks (not followed) and other entries, as relative posix paths."""
    files: list[str] = []
    links: dict[str, str] = {}
    others: list[str] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(root / relative) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    links[name] = os.readlink(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif entry.is_file(follow_symlinks=False):
                    files.append(name)
                else:  # fifos, sockets, devices: reading could block forever
                    others.append(name)
    files.sort()
    return files, links, others
