import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import registrum
from registrum.client import files
from registrum.client.sync import sync_spools
from registrum.errors import InvalidArgument, ModelNotFound
from targets import Target


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_log_artifact_uploads_a_folder_once(target: Target, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "preds", {"a.csv": b"1,2\n", "sub/b.csv": b"3,4\n"})
    with registrum.init(project="p", store=target.store) as run:
        first = run.log_artifact(folder, name="predictions", type="predictions")
        again = run.log_artifact(folder, name="predictions", type="predictions")
    assert first is not None and again is not None
    assert (first.version, again.version) == (1, 1)
    assert sorted(x.path for x in first.files) == ["a.csv", "sub/b.csv"]
    assert first.run_id == run.id and first.type == "predictions"


def test_a_large_file_is_read_once_and_sent_once(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrum.client.http import HttpStore
    from registrum.store.service import Store

    monkeypatch.setattr(files, "STREAM_MIN", 4096)  # "large" from 4 KiB on, for the test
    sent: list[str | None] = []
    for cls in (Store, HttpStore):
        real = cls.put_blob

        def counted(self: Any, stream: Any, *, sha256: str | None = None, _real: Any = real) -> Any:
            sent.append(sha256)
            return _real(self, stream, sha256=sha256)

        monkeypatch.setattr(cls, "put_blob", counted)
    weights = tmp_path / "model.bin"
    weights.write_bytes(os.urandom(50_000))
    with registrum.init(project="p", store=target.store, capture_code=False) as run:
        first = run.log_artifact(weights, name="model")
        assert sent == [None]  # sent unhashed: the store hashed it on arrival
        again = run.log_artifact(weights, name="model")  # unchanged: its digest is known
        weights.write_bytes(os.urandom(50_000))
        changed = run.log_artifact(weights, name="model")
    assert first is not None and again is not None and changed is not None
    [f] = first.files
    assert f.sha256 == hashlib.sha256(b"".join(target.reader.read_blob(f.sha256))).hexdigest()
    assert (first.version, again.version, changed.version) == (1, 1, 2)
    assert sent == [None, None]  # the second log sent nothing
    assert changed.files[0].sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_a_checkpoint_is_uploaded_in_the_background_even_if_deleted(
    target: Target, tmp_path: Path
) -> None:
    ckpt = tmp_path / "epoch=3.ckpt"
    ckpt.write_bytes(b"weights" * 1000)
    with registrum.init(project="p", store=target.store) as run:
        run.log_checkpoint(ckpt, step=300, metrics={"val_loss": 0.2})
        ckpt.unlink()  # as ModelCheckpoint does with a checkpoint that fell out of its top k
    stored = target.reader.get_artifact("p", "checkpoints")
    assert stored.type == "checkpoint" and stored.run_id == run.id
    assert stored.metadata["step"] == 300 and stored.metadata["metrics"] == {"val_loss": 0.2}
    assert [x.path for x in stored.files] == ["epoch=3.ckpt"]
    assert not list((target.home / "spool").glob("*/files/*"))


def test_a_checkpoint_is_not_read_in_the_callers_thread(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = []
    real_hash = files.hash_file

    def hash_file(path: Path) -> tuple[str, int]:
        readers.append(threading.current_thread())
        return real_hash(path)

    monkeypatch.setattr(files, "hash_file", hash_file)
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"weights" * 1000)
    with registrum.init(project="p", store=target.store) as run:
        run.log_checkpoint(ckpt, step=1)
        assert threading.current_thread() not in readers
    assert readers and threading.current_thread() not in readers
    assert target.reader.get_artifact("p", "checkpoints").files[0].size == 7000


def test_a_checkpoint_rewritten_in_place_before_its_upload_is_noticed(
    target: Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")  # held in the spool until the rewrite
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"epoch 1" * 100)
    with registrum.init(project="p", store=target.store) as run:
        run.log_checkpoint(ckpt, step=1)
        time.sleep(0.01)
        with open(ckpt, "r+b") as out:  # as a trainer that saves over the same file does
            out.write(b"EPOCH 2")
    with caplog.at_level(logging.WARNING, logger="registrum"):
        assert (
            sync_spools(target.home / "spool", home=target.home, store=target.store)[0].error
            is None
        )
    assert "last.ckpt was rewritten in place after it was logged" in caplog.text
    [f] = target.reader.get_artifact("p", "checkpoints").files
    assert b"".join(target.reader.read_blob(f.sha256)) == ckpt.read_bytes()


def test_register_then_use_a_model(target: Target, tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x00\x01" * 5000)
    with registrum.init(project="mnist", config={"lr": 0.01}, store=target.store) as train:
        train.log({"val_acc": 0.97}, step=10)
        model = train.log_model(weights, flavor="bytes")
        first = train.register_model("mnist-cnn", model=model, aliases=["candidate"])
        second = train.register_model("mnist-cnn", path=weights, metrics={"val_acc": 0.98})
    assert first is not None and second is not None
    assert (first.version, second.version) == (1, 2)
    assert first.aliases == ["candidate"] and first.flavor == "bytes"
    assert first.metrics == {"val_acc": 0.97} and first.params == {"lr": 0.01}
    assert second.metrics == {"val_acc": 0.98}

    with registrum.init(project="mnist", job_type="evaluation", store=target.store) as ev:
        folder = ev.use_model("mnist-cnn@candidate")
        assert (folder / "model.bin").read_bytes() == weights.read_bytes()
        assert ev.use_model("mnist-cnn@candidate") == folder  # cached, verified, same place
    inputs = target.reader.run_inputs(ev.id)
    assert [(i["kind"], i["target_id"]) for i in inputs] == [("model_version", first.id)]


def test_use_dataset_versions_by_content(target: Target) -> None:
    np = pytest.importorskip("numpy")
    data = np.arange(1000, dtype=np.float32).reshape(100, 10)
    with registrum.init(project="p", store=target.store) as run:
        print_ = run.use_dataset(data, name="train", role="train")
        run.use_dataset(data.copy(), name="train", role="train")
    assert print_.rows == 100
    changed = data.copy()
    changed[5, 5] = -1
    with registrum.init(project="p", store=target.store) as other:
        other.use_dataset(changed, name="train")
    versions = target.reader.list_datasets("p", name="train")
    assert [d.version for d in versions] == [2, 1]
    assert versions[1].rows == 100 and versions[1].fingerprint == print_.digest
    assert [i["kind"] for i in target.reader.run_inputs(run.id)] == ["dataset"]


def test_bad_calls_raise_at_the_call(target: Target, tmp_path: Path) -> None:
    with registrum.init(project="p", store=target.store) as run:
        with pytest.raises(InvalidArgument, match="does not exist"):
            run.log_artifact(tmp_path / "missing")
        with pytest.raises(InvalidArgument, match="nothing to register"):
            run.register_model("m")
        with pytest.raises(InvalidArgument):
            run.use_model("no@such@ref")
        with pytest.raises(ModelNotFound):
            run.use_model("nobody-registered-this@champion")
    assert target.reader.run_inputs(run.id) == []
    assert target.reader.list_artifacts("p") == []
