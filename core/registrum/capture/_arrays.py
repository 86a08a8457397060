"""Hashing of values for ``fingerprint``: numpy arrays, torch tensors and pandas objects, and
the type-tagged encoding of lists and scalars. The two nest in each other (a list of arrays,
an array of objects), so they live in one module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from registrum.capture._digest import SUPPORTED, Fingerprint, Hasher, start_digest

if TYPE_CHECKING:
    import numpy as np

_ARRAY_CHUNK = 1 << 24  # bytes per piece when an array must be copied to be hashed


def numpy_fingerprint(arr: np.ndarray[Any, Any]) -> Fingerprint:
    import numpy as np

    arr = np.asarray(arr)
    digest = hash_array(arr)
    schema: dict[str, Any] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.dtype.hasobject:
        schema["object_elements"] = "hashed by value (str, bytes, numbers) or repr"
    return Fingerprint(digest, "numpy", schema, int(arr.shape[0]) if arr.ndim else None)


def hash_array(arr: np.ndarray[Any, Any], dtype_name: str | None = None) -> str:
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
    digest = start_digest("array", {"dtype": descr, "shape": list(arr.shape)})
    if arr.dtype.hasobject:
        # Only pointers are copied; each element is hashed by value.
        update_canonical(digest, list(arr.reshape(-1)))
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


def torch_fingerprint(tensor: Any) -> Fingerprint:
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
        digest = hash_array(t.numpy(), dtype_name)  # shares memory: no copy
    else:
        digest = _hash_device_tensor(t, dtype_name)
    schema = {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}
    return Fingerprint(digest, "torch", schema, shape[0] if shape else None)


def _hash_device_tensor(t: Any, dtype_name: str | None) -> str:
    """Hash a GPU tensor a slab of rows at a time, so host memory stays bounded."""
    import numpy as np

    dtype = t[:0].cpu().numpy().dtype if t.dim() else t.cpu().numpy().dtype
    descr = dtype_name or np.lib.format.dtype_to_descr(dtype.newbyteorder("<"))
    digest = start_digest("array", {"dtype": descr, "shape": list(t.shape)})
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


def pandas_fingerprint(obj: Any) -> Fingerprint:
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
    digest = start_digest("pandas", header)
    # One 64-bit hash per row, covering the index and every column's value.
    row_hashes = pd.util.hash_pandas_object(obj, index=True).to_numpy()
    digest.update(_little(row_hashes).data)
    return Fingerprint(digest.hexdigest(), "pandas", schema, len(obj))


# --- values: lists, scalars and what nests in them ------------------------------


def update_canonical(digest: Hasher, value: Any) -> None:
    """Feed a value's type-tagged encoding: 1, 1.0, True and "1" all differ."""
    parts: list[str] = []
    _encode(value, parts, digest)
    digest.update("".join(parts).encode("utf-8", "surrogatepass"))


def _encode(value: Any, parts: list[str], digest: Hasher) -> None:
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
            parts.append(f"a{hash_array(value)};")
    else:
        text = repr(value)
        if " at 0x" in text:
            raise TypeError(
                f"cannot fingerprint an element of type {type(value).__qualname__}: its "
                f"repr changes from run to run; supported: {SUPPORTED}"
            )
        parts.append(f"r{len(text)}:{text}")
