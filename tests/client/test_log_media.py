"""`run.log_image`, `log_figure`, `log_table` and `log_text`: encoded at the call (bad input
raises there), delivered in the background, read back by key and step, equal bytes stored
once, and kept through an offline run until `registrum sync`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import registrum
from registrum.client.media import encode_png
from targets import Target, sync

QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}


def _pixels(data: bytes) -> Any:
    """The pixels of PNG bytes, decoded by Pillow: what any viewer would show."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def test_images_of_every_kind_are_png_by_key_and_step(target: Target, tmp_path: Path) -> None:
    import torch
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    grey = np.linspace(0.0, 1.0, 12).reshape(3, 4)  # floats in [0, 1]
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    with registrum.init(project="media", store=target.store, **QUICK) as run:
        run.log({"loss": 1.0}, step=10)
        run.log_image("samples", rgb, caption="epoch 1")  # step 10: the last `log`
        run.log_image("samples", torch.from_numpy(rgb).permute(2, 0, 1))  # C×H×W: step 11
        run.log_image("grey", grey, step=0)
        run.log_image("pil", Image.fromarray(rgb), step=0)
        run.log_image("file", tmp_path / "photo.png", step=0)
        run.log_image("jpeg", str(tmp_path / "photo.jpg"), step=0)
        run.log_image("wide", np.arange(-5, 5).reshape(2, 5), step=0)  # scaled to its range

    with registrum.Client(target.store) as client:
        media = client.media(run.id)
        assert [(m.key, m.step) for m in media] == [
            ("file", 0),
            ("grey", 0),
            ("jpeg", 0),
            ("pil", 0),
            ("samples", 10),
            ("samples", 11),
            ("wide", 0),
        ]
        assert {m.kind for m in media} == {"image"}
        assert {m.media_type for m in media} == {"image/png"}
        first, second = client.media(run.id, "samples")
        assert first.meta == {"width": 7, "height": 5, "caption": "epoch 1"}
        assert first.path == "media/samples/10.png"
        assert first.sha256 == second.sha256  # the same pixels: one blob
        np.testing.assert_array_equal(_pixels(client.media_bytes(run.id, "samples", 10)), rgb)
        np.testing.assert_array_equal(_pixels(client.media_bytes(run.id, "pil", 0)), rgb)
        assert client.media_bytes(run.id, "file", 0) == (tmp_path / "photo.png").read_bytes()
        assert _pixels(client.media_bytes(run.id, "jpeg", 0)).shape == (5, 7, 3)
        np.testing.assert_array_equal(
            _pixels(client.media_bytes(run.id, "grey", 0)), np.rint(grey * 255).astype(np.uint8)
        )
        wide = _pixels(client.media_bytes(run.id, "wide", 0))
        assert (wide.min(), wide.max(), wide.shape) == (0, 255, (2, 5))


def test_figures_tables_and_text(target: Target) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import plotly.graph_objects as go

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [3, 1, 2])
    interactive = go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="loss"))
    frame = pd.DataFrame({"label": ["cat", "dog"], "p": [0.9, float("nan")], "n": [3, 4]})
    with registrum.init(project="media", store=target.store, **QUICK) as run:
        run.log_figure("curve", fig, step=1)
        run.log_figure("curve-live", interactive, step=1)
        run.log_table("preds", frame, step=2)
        run.log_table("cols", {"a": np.array([1, 2]), "b": ["x", "y"]})
        run.log_table("records", [{"a": 1, "b": "x"}, {"a": 2, "c": True}])
        run.log_table("rows", [[1, "x"], [2, "y"]], columns=["a", "b"])
        run.log_text("notes", "first try — lr too high", step=5)
    plt.close(fig)

    with registrum.Client(target.store) as client:
        kinds = {m.key: (m.kind, m.media_type) for m in client.media(run.id)}
        assert kinds == {
            "curve": ("figure", "image/png"),
            "curve-live": ("figure", "application/vnd.plotly.v1+json"),
            "preds": ("table", "application/json"),
            "cols": ("table", "application/json"),
            "records": ("table", "application/json"),
            "rows": ("table", "application/json"),
            "notes": ("text", "text/plain; charset=utf-8"),
        }
        assert _pixels(client.media_bytes(run.id, "curve", 1)).ndim == 3
        plotted = json.loads(client.media_bytes(run.id, "curve-live", 1))
        assert plotted["data"][0]["name"] == "loss"
        assert client.table(run.id, "preds", 2) == {
            "label": ["cat", "dog"],
            "p": [0.9, None],
            "n": [3, 4],
        }
        [preds] = client.media(run.id, "preds")
        assert preds.meta == {"columns": ["label", "p", "n"], "rows": 2}
        assert pd.DataFrame(client.table(run.id, "cols", 0)).to_dict("list") == {
            "a": [1, 2],
            "b": ["x", "y"],
        }
        assert client.table(run.id, "records", 0) == {
            "a": [1, 2],
            "b": ["x", None],
            "c": [None, True],
        }
        assert client.table(run.id, "rows", 0) == {"a": [1, 2], "b": ["x", "y"]}
        text = client.media_bytes(run.id, "notes", 5).decode()
        assert text == "first try — lr too high"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda run: run.log_image("x", np.zeros((2, 2, 2))), r"shape \(2, 2, 2\) cannot be drawn"),
        (lambda run: run.log_image("x", np.array([[np.nan]])), "NaN or infinite"),
        (lambda run: run.log_image("x", np.array([["a"]])), "cannot be drawn: give numbers"),
        (lambda run: run.log_image("x", "no/such/file.png"), "is not a file"),
        (lambda run: run.log_image("x", np.zeros((0, 3))), "has no pixels"),
        (lambda run: run.log_image("a/../b", np.zeros((2, 2))), "must be a path of names"),
        (lambda run: run.log_image("x", np.zeros((2, 2)), step=-1), "whole number >= 0"),
        (lambda run: run.log_image("x", np.zeros((2, 2)), caption=3), "caption must be a string"),
        (lambda run: run.log_figure("x", object()), "matplotlib or plotly figure"),
        (lambda run: run.log_table("x", [[1, 2]]), "needs columns="),
        (lambda run: run.log_table("x", [[1, 2]], columns=["a"]), "row 0 has 2 values"),
        (lambda run: run.log_table("x", {"a": [1], "b": [1, 2]}), "different lengths"),
        (lambda run: run.log_table("x", 42), "takes a frame"),
        (lambda run: run.log_text("x", b"bytes"), "takes a string"),
    ],
)
def test_bad_media_raise_at_the_call_and_send_nothing(
    target: Target, call: Any, message: str
) -> None:
    with (
        registrum.init(project="media", store=target.store, **QUICK) as run,
        pytest.raises(registrum.InvalidArgument, match=message),
    ):
        call(run)
    assert target.reader.list_media(run.id) == []


def test_media_logged_offline_arrive_with_registrum_sync(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init(project="media", store=target.store, **QUICK) as run:
        for step in range(3):
            run.log_image("frames", np.full((4, 4), step * 100, dtype=np.uint8))
        run.log_text("summary", "three frames")
    assert (target.home / "spool" / run.id).exists()
    sync(target.home)
    stored = target.reader.list_media(run.id)
    assert [(m.key, m.step) for m in stored] == [
        ("frames", 0),
        ("frames", 1),
        ("frames", 2),
        ("summary", 0),
    ]
    assert not list((target.home / "spool").glob(f"{run.id}/files/*"))


def test_the_encoder_writes_what_a_decoder_reads() -> None:
    """Every channel layout and size, decoded by Pillow."""
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (3, 2), (9, 17, 3), (4, 5, 4), (6, 3, 1)]:
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        data, meta = encode_png(pixels)
        decoded = _pixels(data)
        assert (meta["height"], meta["width"]) == shape[:2]
        expected = pixels[..., 0] if len(shape) == 3 and shape[-1] == 1 else pixels
        np.testing.assert_array_equal(decoded, expected)
    assert _pixels(encode_png(np.array([[True, False]]))[0]).tolist() == [[255, 0]]
