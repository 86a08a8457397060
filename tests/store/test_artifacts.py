"""Contract tests of blobs, artifacts (versioned manifests), dataset versions and run inputs."""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import BACKENDS, backend_params
from registrum.entities import Artifact, ArtifactFile, DatasetVersion
from registrum.errors import (
    ArtifactNotFound,
    BlobNotFound,
    DatasetNotFound,
    HashMismatch,
    InvalidArgument,
    InvalidName,
    ProjectNotFound,
    RunNotFound,
)

Upload = Callable[..., dict[str, Any]]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def upload(store: Any) -> Upload:
    """Puts `data` as a blob and returns its manifest entry under `path`."""

    def put(path: str, data: bytes) -> dict[str, Any]:
        info = store.put_blob(io.BytesIO(data), sha256=sha(data))
        return {"path": path, "sha256": info.sha256, "size": info.size}

    return put


# -- blobs --------------------------------------------------------------------------


def test_put_blob(store: Any) -> None:
    data = b"weights" * 1000
    assert not store.blob_exists(sha(data))
    info = store.put_blob(io.BytesIO(data))
    assert (info.sha256, info.size) == (sha(data), len(data))
    assert store.blob_exists(sha(data))
    assert store.blob_size(sha(data)) == len(data)
    assert b"".join(store.read_blob(sha(data))) == data


def test_put_blob_from_chunks_with_declared_hash(store: Any) -> None:
    chunks = [b"a" * 100, b"b" * 200, b"", b"c"]
    data = b"".join(chunks)
    info = store.put_blob(iter(chunks), sha256=sha(data))
    assert (info.sha256, info.size) == (sha(data), len(data))
    assert b"".join(store.read_blob(sha(data), 100, 299)) == b"b" * 200


def test_put_blob_twice_is_stored_once(store: Any) -> None:
    data = b"same content"
    first = store.put_blob(io.BytesIO(data))
    assert store.put_blob(io.BytesIO(data)) == first
    assert store.put_blob(io.BytesIO(data), sha256=sha(data)) == first


def test_empty_blob(store: Any) -> None:
    info = store.put_blob(io.BytesIO(b""))
    assert (info.sha256, info.size) == (sha(b""), 0)
    assert store.blob_exists(sha(b""))


def test_hash_mismatch_stores_nothing(store: Any) -> None:
    data, declared = b"actual content", sha(b"what the client claimed")
    with pytest.raises(HashMismatch):
        store.put_blob(io.BytesIO(data), sha256=declared)
    assert not store.blob_exists(declared)
    assert not store.blob_exists(sha(data))
    assert store.missing_blobs([declared, sha(data)]) == [declared, sha(data)]


def test_hash_mismatch_is_an_invalid_argument(store: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.put_blob(io.BytesIO(b"x"), sha256=sha(b"y"))


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, sha(b"x").upper(), sha(b"x") + "0", 5])
def test_invalid_digest(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.put_blob(io.BytesIO(b"x"), sha256=bad)
    with pytest.raises(InvalidArgument):
        store.blob_exists(bad)
    assert not store.blob_exists(sha(b"x"))


def test_missing_blobs(store: Any) -> None:
    have, lack = b"have", b"lack"
    store.put_blob(io.BytesIO(have))
    assert store.missing_blobs([sha(have), sha(lack), sha(lack)]) == [sha(lack)]
    assert store.missing_blobs([]) == []


def test_unknown_blob(store: Any) -> None:
    with pytest.raises(BlobNotFound):
        store.blob_size(sha(b"never"))


# -- artifacts --------------------------------------------------------------------------


def test_create_artifact(store: Any, upload: Upload) -> None:
    run = store.create_run("p")
    files = [upload("model/weights.bin", b"w" * 100), upload("config.json", b"{}")]
    art = store.create_artifact(
        "p", "predictions", type="dataset", files=files, run_id=run.id, metadata={"rows": 3}
    )
    assert isinstance(art, Artifact)
    assert (art.project, art.name, art.version, art.type) == ("p", "predictions", 1, "dataset")
    assert (art.run_id, art.size, art.file_count, art.metadata) == (run.id, 102, 2, {"rows": 3})
    assert art.files == [
        ArtifactFile(path="config.json", sha256=sha(b"{}"), size=2),
        ArtifactFile(path="model/weights.bin", sha256=sha(b"w" * 100), size=100),
    ]
    assert len(art.digest) == 64
    assert store.get_artifact("p", "predictions") == art
    assert store.get_artifact_by_id(art.id) == art


def test_versions_count_up_per_name(store: Any, upload: Upload) -> None:
    versions = [
        store.create_artifact("p", "ckpt", type="checkpoint", files=[upload("m.pt", bytes([i]))])
        for i in range(3)
    ]
    assert [a.version for a in versions] == [1, 2, 3]
    other = store.create_artifact("p", "other", type="checkpoint", files=[upload("m.pt", b"o")])
    assert other.version == 1
    elsewhere = store.create_artifact("q", "ckpt", type="checkpoint", files=[upload("m.pt", b"q")])
    assert elsewhere.version == 1


def test_identical_manifest_returns_the_same_version(store: Any, upload: Upload) -> None:
    a, b = upload("a.txt", b"a"), upload("b.txt", b"b")
    first = store.create_artifact("p", "data", type="dataset", files=[a, b])
    again = store.create_artifact("p", "data", type="dataset", files=[b, a])
    assert again == first
    second = store.create_artifact("p", "data", type="dataset", files=[a])
    assert second.version == 2
    assert store.create_artifact("p", "data", type="dataset", files=[a, b]).version == 1
    assert [x.version for x in store.list_artifacts("p", name="data")] == [2, 1]


def test_same_content_under_another_path_is_a_new_version(store: Any, upload: Upload) -> None:
    store.create_artifact("p", "data", type="dataset", files=[upload("a.txt", b"x")])
    moved = store.create_artifact("p", "data", type="dataset", files=[upload("b.txt", b"x")])
    assert moved.version == 2


def test_get_artifact_by_latest_and_number(store: Any, upload: Upload) -> None:
    one = store.create_artifact("p", "m", type="model", files=[upload("f", b"1")])
    two = store.create_artifact("p", "m", type="model", files=[upload("f", b"2")])
    assert store.get_artifact("p", "m") == two
    assert store.get_artifact("p", "m", "latest") == two
    assert store.get_artifact("p", "m", 1) == one
    assert store.get_artifact("p", "m", "1") == one
    assert store.get_artifact("p", "m", 2) == two
    with pytest.raises(ArtifactNotFound):
        store.get_artifact("p", "m", 3)
    with pytest.raises(ArtifactNotFound):
        store.get_artifact("p", "unknown")
    with pytest.raises(ProjectNotFound):
        store.get_artifact("nope", "m")
    with pytest.raises(ArtifactNotFound):
        store.get_artifact_by_id(two.id + 100)
    for bad in (0, -1, "first", 1.5):
        with pytest.raises(InvalidArgument):
            store.get_artifact("p", "m", bad)


def test_list_artifacts_filters(store: Any, upload: Upload) -> None:
    r1, r2 = store.create_run("p"), store.create_run("p")
    a1 = store.create_artifact("p", "a", type="model", files=[upload("f", b"1")], run_id=r1.id)
    a2 = store.create_artifact("p", "a", type="model", files=[upload("f", b"2")], run_id=r2.id)
    b1 = store.create_artifact("p", "b", type="dataset", files=[upload("f", b"3")], run_id=r1.id)
    store.create_artifact("q", "a", type="model", files=[upload("f", b"4")])

    def ids(items: list[Any]) -> set[int]:
        return {x.id for x in items}

    assert ids(store.list_artifacts("p")) == {a1.id, a2.id, b1.id}
    assert [x.id for x in store.list_artifacts("p", name="a")] == [a2.id, a1.id]
    assert ids(store.list_artifacts("p", run_id=r1.id)) == {a1.id, b1.id}
    assert ids(store.list_artifacts("p", name="a", run_id=r1.id)) == {a1.id}
    assert store.list_artifacts("p", name="none") == []
    listed = store.list_artifacts("p", name="b")[0]
    assert (listed.name, listed.version, listed.file_count, listed.size) == ("b", 1, 1, 1)
    with pytest.raises(ProjectNotFound):
        store.list_artifacts("nope")


@pytest.mark.parametrize(
    "path",
    [
        "../escape.txt",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        "/etc/passwd",
        "C:/windows",
        "a\\b.txt",
        "..\\b",
        "a\x00b",
        "",
        "x" * 1025,
    ],
)
def test_bad_manifest_path_creates_nothing(store: Any, upload: Upload, path: str) -> None:
    good = upload("ok.txt", b"ok")
    with pytest.raises(InvalidArgument):
        store.create_artifact("p", "a", type="model", files=[good, {**good, "path": path}])
    assert store.list_projects() == []


def test_duplicate_manifest_path_creates_nothing(store: Any, upload: Upload) -> None:
    store.create_project("p")
    one, two = upload("same.txt", b"1"), upload("same.txt", b"2")
    with pytest.raises(InvalidArgument):
        store.create_artifact("p", "a", type="model", files=[one, two])
    assert store.list_artifacts("p") == []


@pytest.mark.parametrize(
    "entry",
    [
        {"path": "f", "sha256": "nothex", "size": 1},
        {"path": "f", "size": 1},
        {"path": "f", "sha256": sha(b"x"), "size": -1},
        {"path": "f", "sha256": sha(b"x"), "size": "1"},
        {"path": "f", "sha256": sha(b"x"), "size": 2},
        {"path": "f", "sha256": sha(b"x")},
        "f",
    ],
)
def test_bad_manifest_entry_creates_nothing(store: Any, upload: Upload, entry: Any) -> None:
    store.create_project("p")
    upload("x", b"x")
    with pytest.raises(InvalidArgument):
        store.create_artifact("p", "a", type="model", files=[entry])
    assert store.list_artifacts("p") == []


@pytest.mark.parametrize("files", [[], "f", None, {"path": "f"}])
def test_manifest_must_be_a_non_empty_list(store: Any, files: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.create_artifact("p", "a", type="model", files=files)
    assert store.list_projects() == []


def test_manifest_naming_a_missing_blob(store: Any, upload: Upload) -> None:
    store.create_project("p")
    present = upload("present", b"here")
    absent = {"path": "absent", "sha256": sha(b"never uploaded"), "size": 14}
    with pytest.raises(BlobNotFound) as info:
        store.create_artifact("p", "a", type="model", files=[present, absent])
    assert sha(b"never uploaded") in str(info.value)
    assert store.list_artifacts("p") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "a/b"),
        ("project", ""),
        ("name", "a/b"),
        ("name", "x" * 257),
        ("name", "bad\nname"),
        ("type", ""),
        ("type", "a\x00"),
    ],
)
def test_invalid_artifact_names_create_nothing(
    store: Any, upload: Upload, field: str, value: str
) -> None:
    args = {"project": "p", "name": "a", "type": "model"}
    args[field] = value
    with pytest.raises(InvalidName):
        store.create_artifact(
            args["project"], args["name"], type=args["type"], files=[upload("f", b"f")]
        )
    assert store.list_projects() == []


def test_artifact_of_unknown_run_creates_nothing(store: Any, upload: Upload) -> None:
    with pytest.raises(RunNotFound):
        store.create_artifact("p", "a", type="model", files=[upload("f", b"f")], run_id="missing")
    assert store.list_projects() == []


def test_artifact_metadata_must_be_json(store: Any, upload: Upload) -> None:
    with pytest.raises(InvalidArgument):
        store.create_artifact("p", "a", type="model", files=[upload("f", b"f")], metadata=[1])
    with pytest.raises(InvalidArgument):
        store.create_artifact(
            "p", "a", type="model", files=[upload("f", b"f")], metadata={"x": math.nan}
        )
    assert store.list_projects() == []


# -- datasets ---------------------------------------------------------------------------

FP1, FP2 = "a" * 64, "b" * 64


def test_dataset_versions_by_fingerprint(store: Any) -> None:
    first = store.log_dataset(
        "p",
        "mnist-train",
        fingerprint=FP1,
        schema={"x": {"dtype": "float32", "shape": [28, 28]}},
        rows=60_000,
        metadata={"source": "yann"},
    )
    assert isinstance(first, DatasetVersion)
    assert (first.project, first.name, first.version, first.fingerprint) == (
        "p",
        "mnist-train",
        1,
        FP1,
    )
    assert first.schema == {"x": {"dtype": "float32", "shape": [28, 28]}}
    assert (first.rows, first.metadata, first.artifact_id) == (60_000, {"source": "yann"}, None)
    same = store.log_dataset("p", "mnist-train", fingerprint=FP1, rows=1)
    assert same == first
    second = store.log_dataset("p", "mnist-train", fingerprint=FP2)
    assert second.version == 2
    assert store.log_dataset("p", "mnist-train", fingerprint=FP1) == first
    assert store.log_dataset("p", "mnist-test", fingerprint=FP1).version == 1


def test_get_and_list_datasets(store: Any) -> None:
    one = store.log_dataset("p", "d", fingerprint=FP1)
    two = store.log_dataset("p", "d", fingerprint=FP2)
    other = store.log_dataset("p", "e", fingerprint=FP1)
    assert store.get_dataset("p", "d") == two
    assert store.get_dataset("p", "d", "latest") == two
    assert store.get_dataset("p", "d", 1) == one
    assert store.list_datasets("p") == [two, one, other]
    assert store.list_datasets("p", name="e") == [other]
    with pytest.raises(DatasetNotFound):
        store.get_dataset("p", "d", 3)
    with pytest.raises(DatasetNotFound):
        store.get_dataset("p", "none")
    with pytest.raises(ProjectNotFound):
        store.get_dataset("nope", "d")


def test_dataset_backed_by_an_artifact(store: Any, upload: Upload) -> None:
    art = store.create_artifact("p", "files", type="dataset", files=[upload("data.csv", b"a,b")])
    ds = store.log_dataset("p", "table", fingerprint=FP1, artifact_id=art.id)
    assert ds.artifact_id == art.id
    with pytest.raises(ArtifactNotFound):
        store.log_dataset("p", "table2", fingerprint=FP1, artifact_id=art.id + 100)
    assert [d.name for d in store.list_datasets("p")] == ["table"]


def test_dataset_run_inputs(store: Any) -> None:
    run = store.create_run("p")
    train = store.log_dataset("p", "train", fingerprint=FP1, run_id=run.id, role="train")
    store.log_dataset("p", "train", fingerprint=FP1, run_id=run.id, role="train")
    val = store.log_dataset("p", "val", fingerprint=FP2, run_id=run.id, role="validation")
    inputs = store.run_inputs(run.id)
    assert [(i["kind"], i["target_id"], i["role"]) for i in inputs] == [
        ("dataset", train.id, "train"),
        ("dataset", val.id, "validation"),
    ]
    assert all(isinstance(i["created_at"], float) for i in inputs)
    other = store.create_run("p")
    assert store.run_inputs(other.id) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fingerprint": "short"},
        {"fingerprint": "x" * 129},
        {"fingerprint": 12345678},
        {"fingerprint": FP1, "rows": -1},
        {"fingerprint": FP1, "rows": "many"},
        {"fingerprint": FP1, "schema": ["x"]},
        {"fingerprint": FP1, "metadata": {"x": math.inf}},
        {"fingerprint": FP1, "artifact_id": 0},
    ],
)
def test_invalid_dataset_creates_nothing(store: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        store.log_dataset("p", "d", **kwargs)
    assert store.list_projects() == []


@pytest.mark.parametrize("name", ["a/b", "", "x" * 257])
def test_invalid_dataset_name_creates_nothing(store: Any, name: str) -> None:
    with pytest.raises(InvalidName):
        store.log_dataset("p", name, fingerprint=FP1)
    assert store.list_projects() == []


def test_dataset_for_unknown_run_creates_nothing(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.log_dataset("p", "d", fingerprint=FP1, run_id="missing")
    assert store.list_projects() == []


def test_add_run_input(store: Any, upload: Upload) -> None:
    run = store.create_run("p")
    art = store.create_artifact("p", "a", type="model", files=[upload("f", b"f")])
    ds = store.log_dataset("p", "d", fingerprint=FP1)
    mv = store.register_model_version("m", project="p", artifact_id=art.id)
    store.add_run_input(run.id, kind="artifact", target_id=art.id)
    store.add_run_input(run.id, kind="dataset", target_id=ds.id, role="eval")
    store.add_run_input(run.id, kind="model_version", target_id=mv.id, role="evaluated")
    store.add_run_input(run.id, kind="model_version", target_id=mv.id, role="evaluated")
    assert [(i["kind"], i["target_id"], i["role"]) for i in store.run_inputs(run.id)] == [
        ("artifact", art.id, "input"),
        ("dataset", ds.id, "eval"),
        ("model_version", mv.id, "evaluated"),
    ]


def test_invalid_run_input_changes_nothing(store: Any) -> None:
    run = store.create_run("p")
    ds = store.log_dataset("p", "d", fingerprint=FP1)
    with pytest.raises(InvalidArgument):
        store.add_run_input(run.id, kind="checkpoint", target_id=ds.id)
    with pytest.raises(InvalidArgument):
        store.add_run_input(run.id, kind="dataset", target_id=ds.id + 100)
    with pytest.raises(InvalidArgument):
        store.add_run_input(run.id, kind="dataset", target_id=0)
    with pytest.raises(InvalidArgument):
        store.add_run_input(run.id, kind="dataset", target_id=ds.id, role="")
    with pytest.raises(RunNotFound):
        store.add_run_input("missing", kind="dataset", target_id=ds.id)
    with pytest.raises(RunNotFound):
        store.run_inputs("missing")
    assert store.run_inputs(run.id) == []


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The service layer itself (run files are frozen there, not over /api/v1)."""
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened


def test_freezing_the_same_run_files_again_gives_the_same_version(service: Any) -> None:
    store = service

    def upload(path: str, data: bytes) -> dict[str, Any]:
        info = store.put_blob(io.BytesIO(data), sha256=sha(data))
        return {"path": path, "sha256": info.sha256, "size": info.size}

    run = store.create_run("freeze")
    first = upload("model/MLmodel", b"flavors: {}\n")
    store.put_run_file(run.id, first["path"], sha256=first["sha256"], size=first["size"])
    frozen = store.freeze_run_files(run.id, "model", name="model")
    assert [f.path for f in frozen.files] == ["MLmodel"]
    again = store.freeze_run_files(run.id, "model", name="model")
    assert (again.id, again.version, again.files) == (frozen.id, frozen.version, frozen.files)
    weights = upload("model/weights.bin", b"\x00" * 10)
    store.put_run_file(run.id, weights["path"], sha256=weights["sha256"], size=weights["size"])
    grown = store.freeze_run_files(run.id, "model", name="model")
    assert grown.version == frozen.version + 1
    assert sorted(f.path for f in grown.files) == ["MLmodel", "weights.bin"]
    assert store.freeze_run_files(run.id, "empty", name="model") is None
