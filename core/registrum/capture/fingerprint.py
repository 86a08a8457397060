"""Content fingerprints of datasets: arrays, frames, tensors, lists, files and folders."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Fingerprint", "fingerprint", "hash_file"]

_FILE_CHUNK = 1 << 20
_ARRAY_CHUNK = 1 << 24  # bytes per piece when an array must be copied to be hashed
_VERSION = b"registrum-fingerprint-v1\0"
_SUPPORTED = (
    "numpy arrays, pandas DataFrames and Series, torch tensors, lists and tuples, "
    "bytes, and paths (str or pathlib.Path) of files or folders"
)


@dataclass(frozen=True)
class Fingerprint:
    """The identity of a dataset's content.

    Attributes:
        digest: sha256 hex of the content and its layout (dtype, shape, columns);
            the same on every process and machine for the same content.
        kind: What was hashed: ``numpy``, ``pandas``, ``torch``, ``list``,
            ``file``, ``folder`` or ``bytes``.
        schema: JSON-serialisable description: dtype and shape, columns, or
            file counts.
        rows: Number of rows (first dimension, length); None for files, folders,
            bytes and 0-d arrays.
    """

    digest: str
    kind: str
    schema: dict[str, Any]
    rows: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


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
        return _numpy_fingerprint(data)
    if module.startswith("pandas") and type(data).__name__ in ("DataFrame", "Series"):
        return _pandas_fingerprint(data)
    if module.startswith("torch") and hasattr(data, "detach"):
        return _torch_fingerprint(data)
    raise TypeError(
        f"cannot fingerprint an object of type {module}.{type(data).__qualname__}; "
        f"supported: {_SUPPORTED}"
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


class _Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def _start(kind: str, header: dict[str, Any]) -> _Hasher:
    """A hasher fed with an unambiguous header, so layouts never collide."""
    digest = hashlib.sha256(_VERSION)
    digest.update(kind.encode() + b"\0")
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\0")
    return digest


# --- arrays ---------------------------------------------------------------------


def _numpy_fingerprint(arr: np.ndarray[Any, Any]) -> Fingerprint:
    import numpy as np

    arr = np.asarray(arr)
    digest = _hash_array(arr)
    schema: dict[str, Any] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.dtype.hasobject:
        schema["object_elements"] = "hashed by value (str, bytes, numbers) or repr"
    return Fingerprint(digest, "numpy", schema, int(arr.shape[0]) if arr.ndim else None)


def _hash_array(arr: np.ndarray[Any, Any], dtype_name: str | None = None) -> str:
    """Hash dtype, shape and C-order values.

    Args:
        arr: The array.
        dtype_name: Name to hash instead of the dtype's, for dtypes that were
            widened before hashing.
    """
    import numpy as np

    dtype = arr.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder != "little"):
        # Same values, same digest on any machine: hash little-endian bytes.
        dtype = dtype.newbyteorder("<")
    descr = dtype_name or np.lib.format.dtype_to_descr(dtype)
    digest = _start("array", {"dtype": descr, "shape": list(arr.shape)})
    if arr.dtype.hasobject:
        # Only pointers are copied; each element is hashed by value.
        _update_canonical(digest, list(arr.reshape(-1)))
        return digest.hexdigest()
    for piece in _c_order_pieces(arr):
        if piece.dtype != dtype:
            piece = piece.astype(dtype)
        # A byte view of a C-contiguous array: hashed without a copy.
        digest.update(piece.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def _c_order_pieces(arr: np.ndarray[Any, Any]) -> Iterator[np.ndarray[Any, Any]]:
    """Yield C-contiguous pieces whose bytes, joined, are ``arr``'s C-order bytes."""
    import numpy as np

    if arr.flags.c_contiguous:  # 0-d arrays always are
        yield arr
        return
    row_bytes = arr.itemsize * int(np.prod(arr.shape[1:]))
    if row_bytes > _ARRAY_CHUNK and arr.ndim > 1:
        for row in arr:
            yield from _c_order_pieces(row)
        return
    step = max(1, _ARRAY_CHUNK // max(1, row_bytes))
    for start in range(0, arr.shape[0], step):
        yield np.ascontiguousarray(arr[start : start + step])


def _torch_fingerprint(tensor: Any) -> Fingerprint:
    import torch

    t = tensor.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.resolve_conj().resolve_neg()
    dtype_name = None
    shape = list(t.shape)
    # dtypes numpy lacks (bfloat16, float8) widen losslessly to float32; the
    # header keeps torch's name so they never match a float32 tensor.
    try:
        torch.empty(0, dtype=t.dtype).numpy()
    except TypeError:
        dtype_name = str(t.dtype)
        t = t.to(torch.float32) if t.is_floating_point() else t.to(torch.int64)
    if t.device.type == "cpu":
        digest = _hash_array(t.numpy(), dtype_name)  # shares memory: no copy
    else:
        digest = _hash_device_tensor(t, dtype_name)
    schema = {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}
    return Fingerprint(digest, "torch", schema, shape[0] if shape else None)


def _hash_device_tensor(t: Any, dtype_name: str | None) -> str:
    """Hash a GPU tensor a slab of rows at a time, so host memory stays bounded."""
    import numpy as np

    dtype = t[:0].cpu().numpy().dtype if t.dim() else t.cpu().numpy().dtype
    descr = dtype_name or np.lib.format.dtype_to_descr(dtype.newbyteorder("<"))
    digest = _start("array", {"dtype": descr, "shape": list(t.shape)})
    if t.dim() == 0:
        digest.update(_little(t.cpu().numpy()).tobytes())
        return digest.hexdigest()
    row_bytes = max(1, t[0].numel() * t.element_size()) if t.shape[0] else 1
    step = max(1, _ARRAY_CHUNK // row_bytes)
    for start in range(0, t.shape[0], step):
        piece = t[start : start + step].contiguous().cpu().numpy()
        digest.update(_little(piece).reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def _little(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return arr if sys.byteorder == "little" else arr.astype(arr.dtype.newbyteorder("<"))


# --- frames ---------------------------------------------------------------------


def _pandas_fingerprint(obj: Any) -> Fingerprint:
    import pandas as pd

    if type(obj).__name__ == "DataFrame":
        columns = [repr(c) for c in obj.columns]
        dtypes = [str(d) for d in obj.dtypes]
        schema: dict[str, Any] = {"columns": {str(c): str(d) for c, d in obj.dtypes.items()}}
    else:
        columns, dtypes = [repr(obj.name)], [str(obj.dtype)]
        schema = {"name": None if obj.name is None else str(obj.name), "dtype": str(obj.dtype)}
    index = obj.index
    header = {
        "type": type(obj).__name__,
        "columns": columns,
        "dtypes": dtypes,
        "index_names": [repr(n) for n in index.names],
        "index_dtypes": [str(d) for d in getattr(index, "dtypes", [index.dtype])],
        "rows": len(obj),
    }
    digest = _start("pandas", header)
    # One 64-bit hash per row, covering the index and every column's value.
    row_hashes = pd.util.hash_pandas_object(obj, index=True).to_numpy()
    digest.update(_little(row_hashes).data)
    return Fingerprint(digest.hexdigest(), "pandas", schema, len(obj))


# --- lists and bytes --------------------------------------------------------------


def _list_fingerprint(items: list[Any] | tuple[Any, ...]) -> Fingerprint:
    digest = _start("list", {"length": len(items)})
    _update_canonical(digest, items)
    schema = {
        "type": "list",
        "length": len(items),
        "item_types": sorted({type(item).__name__ for item in items}),
    }
    return Fingerprint(digest.hexdigest(), "list", schema, len(items))


def _update_canonical(digest: _Hasher, value: Any) -> None:
    """Feed a value's type-tagged encoding: 1, 1.0, True and "1" all differ."""
    parts: list[str] = []
    _encode(value, parts, digest)
    digest.update("".join(parts).encode("utf-8", "surrogatepass"))


def _encode(value: Any, parts: list[str], digest: _Hasher) -> None:
    kind = type(value)
    # Exact types first: the common case of big flat lists stays fast.
    if kind is float:
        parts.append(f"f{value!r};")  # repr round-trips; nan and inf are spelled out
    elif kind is int:
        parts.append(f"i{value};")
    elif kind is str:
        parts.append(f"s{len(value)}:{value}")
    elif value is None or isinstance(value, bool):
        parts.append(f"{value!r};")
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for item in value:
            _encode(item, parts, digest)
            if len(parts) > 8192:  # bounded memory for long lists
                digest.update("".join(parts).encode("utf-8", "surrogatepass"))
                parts.clear()
        parts.append("]")
    elif isinstance(value, int):  # subclasses (numpy floats, enums) hash as their base
        parts.append(f"i{int(value)};")
    elif isinstance(value, float):
        parts.append(f"f{float(value)!r};")
    elif isinstance(value, str):
        parts.append(f"s{len(value)}:{value!s}")
    elif isinstance(value, (bytes, bytearray)):
        parts.append(f"b{bytes(value).hex()};")
    elif isinstance(value, dict):
        parts.append("{")
        for key in sorted(value, key=repr):
            _encode(key, parts, digest)
            _encode(value[key], parts, digest)
        parts.append("}")
    elif (type(value).__module__ or "").startswith("numpy"):
        if getattr(value, "ndim", 0) == 0:  # numpy scalars hash as Python numbers
            _encode(value.item(), parts, digest)
        else:
            parts.append(f"a{_hash_array(value)};")
    else:
        text = repr(value)
        if " at 0x" in text:
            raise TypeError(
                f"cannot fingerprint an element of type {type(value).__qualname__}: its "
                f"repr changes from run to run; supported: {_SUPPORTED}"
            )
        parts.append(f"r{len(text)}:{text}")


def _bytes_fingerprint(data: bytes | bytearray | memoryview) -> Fingerprint:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B")
    digest = _start("bytes", {"length": view.nbytes})
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
    digest = _start("file", {"sha256": sha, "size": size})
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
    digest = _start("folder", {"entries": len(entries)})
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
