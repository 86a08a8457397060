"""Contract tests of run media: images, figures, tables and text by key and step, stored as
the run's files (so their bytes are blobs stored once, read with the run, collected with it)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from backends import BACKENDS, backend_params
from registrum.entities import Media
from registrum.errors import BlobNotFound, InvalidArgument, InvalidName, MediaNotFound
from registrum.store import Store
from registrum.store import schema as t


def _blob(store: Any, data: bytes) -> tuple[str, int]:
    info = store.put_blob(io.BytesIO(data))
    return info.sha256, info.size


def test_media_by_key_and_step(store: Any) -> None:
    run = store.create_run("media")
    png, png_size = _blob(store, b"\x89PNG fake image bytes")
    table, table_size = _blob(store, b'{"columns": ["a"], "data": {"a": [1, 2]}}')
    first = store.log_media(
        run.id, "val/samples", step=3, kind="image", format="png", sha256=png, size=png_size,
        meta={"caption": "epoch 3", "width": 2, "height": 1},
    )  # fmt: skip
    assert isinstance(first, Media)
    assert (first.key, first.step, first.kind, first.path) == (
        "val/samples",
        3,
        "image",
        "media/val/samples/3.png",
    )
    assert (first.media_type, first.sha256, first.size) == ("image/png", png, png_size)
    assert first.meta == {"caption": "epoch 3", "width": 2, "height": 1}
    store.log_media(
        run.id, "val/samples", step=1, kind="image", format="png", sha256=png, size=png_size
    )
    store.log_media(
        run.id, "confusion", step=0, kind="table", format="json", sha256=table, size=table_size
    )
    listed = store.list_media(run.id)
    assert [(m.key, m.step) for m in listed] == [
        ("confusion", 0),
        ("val/samples", 1),
        ("val/samples", 3),
    ]
    assert listed[0].media_type == "application/json" and listed[0].meta == {}
    assert [m.step for m in store.list_media(run.id, "val/samples")] == [1, 3]
    assert store.get_media(run.id, "val/samples", 3) == first
    # The bytes are the run's file: one blob for both steps.
    assert store.get_run_file(run.id, "media/val/samples/1.png").sha256 == png

    # The same key and step again replaces it.
    other, other_size = _blob(store, b"\x89PNG another image")
    again = store.log_media(
        run.id, "val/samples", step=3, kind="image", format="png", sha256=other, size=other_size
    )
    assert store.get_media(run.id, "val/samples", 3).sha256 == other == again.sha256
    assert len(store.list_media(run.id)) == 3

    with pytest.raises(MediaNotFound, match="logged no media 'val/samples' at step 2"):
        store.get_media(run.id, "val/samples", 2)


def test_bad_media_is_refused_and_changes_nothing(store: Any) -> None:
    run = store.create_run("media")
    sha, size = _blob(store, b"some text")

    def log(**changes: Any) -> Any:
        args: dict[str, Any] = {
            "step": 0, "kind": "text", "format": "txt", "sha256": sha, "size": size,
        }  # fmt: skip
        key = changes.pop("key", "notes")
        return store.log_media(run.id, key, **{**args, **changes})

    with pytest.raises(InvalidArgument, match="media kind 'video' is not one of"):
        log(kind="video")
    with pytest.raises(InvalidArgument, match="a text is stored as txt, not 'png'"):
        log(format="png")
    with pytest.raises(InvalidArgument, match=r"media key 'a/\.\./b' must be a path of names"):
        log(key="a/../b")
    with pytest.raises(InvalidName):
        log(key="")
    with pytest.raises(InvalidArgument, match="step"):
        log(step=-1)
    with pytest.raises(InvalidArgument, match="declared size"):
        log(size=size + 1)
    with pytest.raises(InvalidArgument, match="media meta"):
        log(meta=["not", "an", "object"])
    with pytest.raises(BlobNotFound):
        log(sha256="0" * 64)
    assert store.list_media(run.id) == []
    assert store.list_run_files(run.id) == []
    assert log().kind == "text"


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def direct(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with BACKENDS[request.param](tmp_path) as store:
        yield store


def test_media_go_with_their_files_and_their_run(direct: Store) -> None:
    """A file removed from the run's files (MLflow's artifact delete) takes its media out
    of sight; a deleted run, once collected, takes its media and their bytes."""
    run = direct.create_run("media")
    for key, data in (("a", b"first"), ("b", b"second")):
        sha, size = _blob(direct, data)
        direct.log_media(run.id, key, step=0, kind="text", format="txt", sha256=sha, size=size)
    direct.delete_run_files(run.id, "media/a")
    assert [m.key for m in direct.list_media(run.id)] == ["b"]
    kept = direct.get_media(run.id, "b", 0).sha256
    direct.delete_run(run.id)
    with direct.engine.begin() as conn:
        conn.execute(update(t.runs).values(deleted_at=t.runs.c.deleted_at - 8 * 86400))
        conn.execute(update(t.blobs).values(used_at=0.0, created_at=0.0))
    assert direct.collect_garbage().runs == 1
    assert not direct.blobs.exists(kept)
    with direct.engine.connect() as conn:
        assert conn.execute(select(t.run_media)).all() == []
