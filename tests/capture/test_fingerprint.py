import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registrum.capture.fingerprint import Fingerprint, fingerprint, hash_file

DIGEST_IN_CHILD = """
import sys
import numpy as np
from registrum.capture.fingerprint import fingerprint
data = {
    "array": np.arange(1000, dtype=np.float32).reshape(10, 100),
    "list": [1, 2.5, "x", None, [True, {"k": 1}]],
    "bytes": b"hello",
    "folder": sys.argv[1],
}
for name, value in data.items():
    print(name, fingerprint(value).digest)
"""


def _in_child(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_same_content_same_digest_across_processes(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "data", {"a.csv": b"1,2\n", "sub/b.bin": b"\x00\x01"})
    runs = [
        subprocess.run(
            [sys.executable, "-c", DIGEST_IN_CHILD, str(folder)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    here = {
        "array": fingerprint(np.arange(1000, dtype=np.float32).reshape(10, 100)).digest,
        "list": fingerprint([1, 2.5, "x", None, [True, {"k": 1}]]).digest,
        "bytes": fingerprint(b"hello").digest,
        "folder": fingerprint(folder).digest,
    }
    assert runs[0].split() == [word for item in here.items() for word in item]


def test_numpy_schema_and_rows() -> None:
    fp = fingerprint(np.zeros((5, 3), dtype=np.int16))
    assert fp.kind == "numpy"
    assert fp.schema == {"dtype": "int16", "shape": [5, 3]}
    assert fp.rows == 5
    assert len(fp.digest) == 64
    assert fingerprint(np.float64(1.5)).rows is None
    json.dumps(fp.to_dict())


def test_one_element_changed_changes_the_digest() -> None:
    a = np.random.default_rng(0).random((100, 10))
    b = a.copy()
    b[57, 3] += 1e-12
    assert fingerprint(a).digest != fingerprint(b).digest
    assert fingerprint(a).digest == fingerprint(a.copy()).digest


def test_dtype_and_shape_are_part_of_the_digest() -> None:
    a = np.arange(12, dtype=np.int32)
    assert fingerprint(a).digest != fingerprint(a.view(np.float32)).digest
    assert fingerprint(a).digest != fingerprint(a.reshape(3, 4)).digest
    assert fingerprint(a.reshape(3, 4)).digest != fingerprint(a.reshape(4, 3)).digest
    assert fingerprint(np.zeros(0)).digest != fingerprint(np.zeros((0, 3))).digest


def test_byte_order_does_not_change_the_digest() -> None:
    a = np.arange(10, dtype="<f8")
    assert fingerprint(a).digest == fingerprint(a.astype(">f8")).digest


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::3],
        lambda a: a[::2],
        lambda a: a.T,
        lambda a: np.asfortranarray(a),
        lambda a: a[::-1, 5:17],
        lambda a: a.reshape(40, 5, 6)[:, 1:4, ::2],
    ],
)
def test_non_contiguous_arrays_hash_like_their_contiguous_copies(view: Any) -> None:
    arr = np.random.default_rng(1).random((40, 30))
    sliced = view(arr)
    assert not sliced.flags.c_contiguous
    assert fingerprint(sliced).digest == fingerprint(np.ascontiguousarray(sliced)).digest


def test_non_contiguous_array_larger_than_a_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    from registrum.capture import _arrays as module

    monkeypatch.setattr(module, "_ARRAY_CHUNK", 256)
    arr = np.random.default_rng(2).random((50, 20, 30))
    for sliced in (arr[:, :, ::2], arr[:, ::3, :], arr[::2, 1, :]):
        assert fingerprint(sliced).digest == fingerprint(sliced.copy()).digest


def test_large_contiguous_array_is_hashed_without_a_copy() -> None:
    arr = np.ones(200 * 1024 * 1024 // 8)
    tracemalloc.start()
    try:
        fingerprint(arr)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_object_arrays_hash_by_value() -> None:
    a = np.array(["a", 1, None, 2.5], dtype=object)
    b = np.array(["a", 1, None, 2.5], dtype=object)
    assert fingerprint(a).digest == fingerprint(b).digest
    b[1] = 2
    assert fingerprint(a).digest != fingerprint(b).digest
    assert "object_elements" in fingerprint(a).schema
    with pytest.raises(TypeError, match="repr changes"):
        fingerprint(np.array([object()], dtype=object))


def test_string_and_structured_arrays() -> None:
    words = np.array(["cat", "dog"])
    assert fingerprint(words).digest != fingerprint(np.array(["cat", "dot"])).digest
    rec = np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")])
    fp = fingerprint(rec)
    rec["y"][1] = 1
    assert fingerprint(rec).digest != fp.digest


def test_lists() -> None:
    fp = fingerprint([1, 2.0, "three", [4, None]])
    assert fp.kind == "list"
    assert fp.rows == 4
    assert fp.schema == {
        "type": "list",
        "length": 4,
        "item_types": ["float", "int", "list", "str"],
    }
    assert fingerprint((1, 2)).digest == fingerprint([1, 2]).digest
    distinct = [[1], [1.0], [True], ["1"], [[1]], [b"1"], [float("nan")], [float("inf")]]
    assert len({fingerprint(item).digest for item in distinct}) == len(distinct)
    assert fingerprint(["ab", "c"]).digest != fingerprint(["a", "bc"]).digest
    assert fingerprint([{"a": 1, "b": 2}]).digest == fingerprint([{"b": 2, "a": 1}]).digest
    assert fingerprint([np.int64(3)]).digest == fingerprint([3]).digest


def test_list_of_arrays() -> None:
    rows = [np.arange(3), np.arange(3, 6)]
    assert fingerprint(rows).digest == fingerprint([np.arange(3), np.arange(3, 6)]).digest
    assert fingerprint(rows).digest != fingerprint([np.arange(3), np.arange(3, 7)]).digest


def test_bytes() -> None:
    fp = fingerprint(b"abc")
    assert fp.kind == "bytes"
    assert fp.schema == {"length": 3}
    assert fingerprint(bytearray(b"abc")).digest == fp.digest
    assert fingerprint(memoryview(b"xabcx")[1:4]).digest == fp.digest
    assert fingerprint(memoryview(b"aXbXc")[::2]).digest == fp.digest
    assert fingerprint(b"abd").digest != fp.digest


def test_hash_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    content = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(content)
    assert hash_file(path) == (hashlib.sha256(content).hexdigest(), len(content))
    (tmp_path / "empty").write_bytes(b"")
    assert hash_file(tmp_path / "empty") == (hashlib.sha256(b"").hexdigest(), 0)


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"x,y\n1,2\n")
    fp = fingerprint(path)
    assert fp.kind == "file"
    assert fp.rows is None
    assert fp.schema["bytes"] == 8
    assert fingerprint(str(path)).digest == fp.digest
    path.write_bytes(b"x,y\n1,3\n")
    assert fingerprint(path).digest != fp.digest


def test_folder_is_independent_of_creation_order(tmp_path: Path) -> None:
    files = {"a.txt": b"a", "sub/b.txt": b"bb", ".hidden": b"h", "sub/deep/c": b"ccc"}
    one = _folder(tmp_path / "one", files)
    two = _folder(tmp_path / "two", dict(reversed(list(files.items()))))
    fp = fingerprint(one)
    assert fp.kind == "folder"
    assert fp.schema == {"files": 4, "bytes": 7, "symlinks": []}
    assert fp.rows is None
    assert fingerprint(two).digest == fp.digest


def test_folder_content_change_and_rename(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a.txt": b"a", "sub/b.txt": b"b"})
    before = fingerprint(root).digest
    (root / "sub" / "b.txt").write_bytes(b"B")
    changed = fingerprint(root).digest
    assert changed != before
    (root / "sub" / "b.txt").rename(root / "sub" / "c.txt")
    assert fingerprint(root).digest not in (before, changed)
    (root / ".hidden").write_bytes(b"")
    assert fingerprint(root).schema["files"] == 3


def test_folder_symlinks_are_noted_not_followed(tmp_path: Path) -> None:
    outside = _folder(tmp_path / "outside", {"big.bin": b"x" * 1000})
    root = _folder(tmp_path / "d", {"a.txt": b"a"})
    (root / "link").symlink_to(outside)
    fp = fingerprint(root)
    assert fp.schema == {"files": 1, "bytes": 1, "symlinks": ["link"]}
    (outside / "big.bin").write_bytes(b"y")
    assert fingerprint(root).digest == fp.digest


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        fingerprint(missing)
    with pytest.raises(FileNotFoundError):
        fingerprint(str(missing))


def test_unsupported_type() -> None:
    with pytest.raises(TypeError, match=r"builtins\.set.*numpy arrays"):
        fingerprint({1, 2})
    with pytest.raises(TypeError, match="dict"):
        fingerprint({"a": 1})


def test_pandas() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    fp = fingerprint(frame)
    assert fp.kind == "pandas"
    assert fp.rows == 3
    assert fp.schema == {"columns": {"x": "int64", "y": str(frame["y"].dtype)}}
    assert fingerprint(frame.copy()).digest == fp.digest
    changed = frame.copy()
    changed.loc[1, "x"] = 5
    assert fingerprint(changed).digest != fp.digest
    assert fingerprint(frame.rename(columns={"y": "z"})).digest != fp.digest
    assert fingerprint(frame.set_index(pd.Index([5, 6, 7]))).digest != fp.digest
    assert fingerprint(frame.astype({"x": "int32"})).digest != fp.digest
    series = fingerprint(frame["x"])
    assert series.kind == "pandas"
    assert series.rows == 3
    assert series.digest != fingerprint(frame["x"].rename("w")).digest
    code = (
        "import pandas as pd; from registrum.capture.fingerprint import fingerprint;"
        "print(fingerprint(pd.DataFrame({'x': [1, 2, 3], 'y': ['a', 'b', 'c']})).digest)"
    )
    assert _in_child(code) == fp.digest


def test_torch() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fp = fingerprint(tensor)
    assert fp.kind == "torch"
    assert fp.rows == 3
    assert fp.schema == {"dtype": "float32", "shape": [3, 4]}
    assert fp.digest == fingerprint(tensor.numpy()).digest
    assert fingerprint(tensor.t()).digest == fingerprint(tensor.t().contiguous()).digest
    changed = tensor.clone()
    changed[2, 3] = 0
    assert fingerprint(changed).digest != fp.digest
    assert fingerprint(tensor.requires_grad_()).digest == fp.digest
    half = fingerprint(tensor.to(torch.bfloat16))
    assert half.schema["dtype"] == "bfloat16"
    assert half.digest != fingerprint(tensor.to(torch.bfloat16).float()).digest
    code = (
        "import torch; from registrum.capture.fingerprint import fingerprint;"
        "print(fingerprint(torch.arange(12, dtype=torch.float32).reshape(3, 4)).digest)"
    )
    assert _in_child(code) == fp.digest


def test_torch_tensors_off_the_cpu_are_hashed_in_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from registrum.capture import _arrays as module

    monkeypatch.setattr(module, "_ARRAY_CHUNK", 64)
    tensor = torch.randn(10, 7)
    for t in (tensor, tensor.t(), tensor[3], tensor[0, 0]):
        assert module._hash_device_tensor(t, None) == fingerprint(t).digest
    widened = tensor.to(torch.bfloat16).float()
    expected = fingerprint(tensor.to(torch.bfloat16)).digest
    assert module._hash_device_tensor(widened, "torch.bfloat16") == expected


def test_fingerprint_is_frozen() -> None:
    fp = Fingerprint("0" * 64, "bytes", {}, None)
    with pytest.raises(AttributeError):
        fp.digest = "x"  # type: ignore[misc]
