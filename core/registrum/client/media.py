"""Run media: `log_image`, `log_figure`, `log_table` and `log_text`.

Each is checked and encoded at the call (bad input raises `InvalidArgument` there), written to
the run's spool, and delivered by the writer like everything else: the call never waits for
the store, and media logged while the store is down arrive when it is back. Equal bytes are
uploaded once. Images are PNG, encoded here without a dependency; matplotlib figures are PNG
and plotly figures their JSON (kept interactive); tables a compact columnar JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registrum import validation as v
from registrum.errors import InvalidArgument
from registrum.mediatypes import FORMATS, media_path

if TYPE_CHECKING:
    from registrum.client.transport import Transport
    from registrum.client.writer import Writer

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RunMedia:
    """Run methods for media (mixed into `Run`)."""

    _writer: Writer | None
    _step: int
    _media_steps: dict[str, int]

    def log_image(
        self, key: str, image: Any, step: int | None = None, *, caption: str | None = None
    ) -> None:
        """Logs an image under `key` at `step`: a numpy array (H×W, H×W×1/3/4, or C×H×W;
        uint8, or floats in [0, 1], else scaled to the array's range), a PIL image, a torch
        tensor, or the path of a PNG file (other formats need Pillow). Stored as PNG.

        `step` defaults to the step of the last `log` call, or the key's next step when that
        one holds an image already. Returns at once."""
        data, meta = encode_image(image)
        self._log_media(key, "image", "png", data, meta, step, caption)

    def log_figure(
        self, key: str, figure: Any, step: int | None = None, *, caption: str | None = None
    ) -> None:
        """Logs a matplotlib figure (as PNG) or a plotly figure (its JSON, so it stays
        interactive in the UI) under `key` at `step`. Returns at once."""
        format, data, meta = encode_figure(figure)
        self._log_media(key, "figure", format, data, meta, step, caption)

    def log_table(
        self,
        key: str,
        data: Any,
        step: int | None = None,
        *,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
    ) -> None:
        """Logs a table under `key` at `step`: a pandas frame, a dict of columns, a list of
        records (dicts), or a list of rows with `columns`. Returns at once."""
        encoded, meta = encode_table(data, columns)
        self._log_media(key, "table", "json", encoded, meta, step, caption)

    def log_text(self, key: str, text: str, step: int | None = None) -> None:
        """Logs a text under `key` at `step`. Returns at once."""
        if not isinstance(text, str):
            raise InvalidArgument(f"log_text takes a string, got {type(text).__name__}")
        v.text(text, "text")
        self._log_media(key, "text", "txt", text.encode(), {"chars": len(text)}, step, None)

    def _log_media(
        self,
        key: str,
        kind: str,
        format: str,
        data: bytes,
        meta: dict[str, Any],
        step: int | None,
        caption: str | None,
    ) -> None:
        key = v.key(key, "media key")
        if step is None:
            step = max(self._step - 1, self._media_steps.get(key, 0), 0)
        elif isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgument(f"{kind} {key!r}: step must be a whole number >= 0, not {step!r}")
        media_path(key, step, kind, format)  # the key makes a path
        if caption is not None:
            if not isinstance(caption, str):
                raise InvalidArgument(f"caption must be a string, got {type(caption).__name__}")
            meta["caption"] = v.text(caption, "caption")
        self._media_steps[key] = step + 1
        if self._writer is None:
            return  # disabled: checked, not kept
        folder = self._writer.spool.path / "files"
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"{time.time_ns()}-media{FORMATS[kind][format][0]}"
        with open(source, "wb") as out:
            out.write(data)
        self._writer.submit(
            "log_media",
            key=key,
            step=step,
            kind=kind,
            format=format,
            source=str(source),
            meta=meta,
        )


# -- images ----------------------------------------------------------------------------------


def encode_image(image: Any) -> tuple[bytes, dict[str, Any]]:
    """PNG bytes of `image`, and its width and height."""
    if isinstance(image, str | os.PathLike):
        return _image_file(Path(image))
    if hasattr(image, "save") and hasattr(image, "mode") and hasattr(image, "size"):  # PIL
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        width, height = image.size
        return buffer.getvalue(), {"width": int(width), "height": int(height)}
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor
        image = image.detach().cpu().numpy()
    return encode_png(image)


def _image_file(path: Path) -> tuple[bytes, dict[str, Any]]:
    if not path.is_file():
        raise InvalidArgument(f"image {str(path)!r} is not a file")
    data = path.read_bytes()
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return data, _png_size(data)
    try:
        from PIL import Image
    except ImportError:
        raise InvalidArgument(
            f"image {str(path)!r} is not a PNG file: install Pillow (pip install pillow) to "
            "log other formats, or pass the pixels as an array"
        ) from None
    try:
        with Image.open(path) as opened:
            return encode_image(opened.convert("RGBA" if "A" in opened.mode else "RGB"))
    except OSError as exc:
        raise InvalidArgument(f"image {str(path)!r} cannot be read: {exc}") from None


def _png_size(data: bytes) -> dict[str, Any]:
    """The width and height a PNG's header (IHDR, right after the signature) records."""
    width, height = struct.unpack(">II", data[16:24])
    return {"width": width, "height": height}


def encode_png(pixels: Any) -> tuple[bytes, dict[str, Any]]:
    """An array of pixels as PNG bytes: H×W (grey), H×W×1/3/4, or C×H×W with C of 1, 3 or 4;
    uint8 as it is, floats in [0, 1] times 255, anything else scaled to its own range."""
    import numpy as np

    try:
        array = np.asarray(pixels)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"the image is not an array of pixels: {exc}") from None
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels first, as torch has them
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InvalidArgument(
            f"an image of shape {array.shape} cannot be drawn: give H×W, H×W×1/3/4 or C×H×W"
        )
    if array.size == 0:
        raise InvalidArgument(f"the image of shape {array.shape} has no pixels")
    array = _bytes_per_pixel(array)
    height, width = array.shape[:2]
    color = {2: 0, 3: 2, 4: 6}[array.ndim if array.ndim == 2 else array.shape[-1]]
    rows = array.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), rows]).tobytes()  # filter 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    png = (
        _PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    return png, {"width": int(width), "height": int(height)}


def _bytes_per_pixel(array: Any) -> Any:
    import numpy as np

    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind not in "iuf":
        raise InvalidArgument(f"an image of {array.dtype} values cannot be drawn: give numbers")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise InvalidArgument("the image holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif array.dtype.kind in "iu" and low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8))


# -- figures ---------------------------------------------------------------------------------


def encode_figure(figure: Any) -> tuple[str, bytes, dict[str, Any]]:
    """A matplotlib figure as PNG, or a plotly figure as its JSON."""
    if hasattr(figure, "to_plotly_json") and hasattr(figure, "to_json"):
        return "plotly", figure.to_json().encode(), {}
    if hasattr(figure, "savefig"):  # a matplotlib Figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        data = buffer.getvalue()
        return "png", data, _png_size(data)
    raise InvalidArgument(
        f"log_figure takes a matplotlib or plotly figure, got {type(figure).__name__}: "
        "log pixels with log_image"
    )


# -- tables ----------------------------------------------------------------------------------


def encode_table(data: Any, columns: Sequence[str] | None = None) -> tuple[bytes, dict[str, Any]]:
    """`{"columns": [...], "data": [[column 1], [column 2], ...]}` as JSON, and the columns
    and the number of rows."""
    if hasattr(data, "columns") and hasattr(data, "to_dict") and hasattr(data, "iloc"):  # pandas
        if columns is not None:
            raise InvalidArgument("columns= is for a list of rows: a frame names its own")
        names = [str(c) for c in data.columns]
        values = [data.iloc[:, i].tolist() for i in range(data.shape[1])]
    elif isinstance(data, Mapping):
        if columns is not None:
            raise InvalidArgument("columns= is for a list of rows: a dict names its own")
        names = [str(k) for k in data]
        values = [_column(data[k], str(k)) for k in data]
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            if columns is not None:
                raise InvalidArgument("columns= is for a list of rows: records name their own")
            names = list(dict.fromkeys(str(k) for r in rows for k in r))
            values = [[r.get(n) for r in rows] for n in names]
        else:
            if columns is None:
                raise InvalidArgument(
                    "a list of rows needs columns=[...]; or give a frame, a dict of columns "
                    "or a list of records"
                )
            names = [v.text(str(c), "column") for c in columns]
            for i, row in enumerate(rows):
                if isinstance(row, str | bytes) or not isinstance(row, Sequence):
                    raise InvalidArgument(f"row {i} is not a list of values")
                if len(row) != len(names):
                    raise InvalidArgument(f"row {i} has {len(row)} values for {len(names)} columns")
            values = [[row[j] for row in rows] for j in range(len(names))]
    else:
        raise InvalidArgument(
            f"log_table takes a frame, a dict of columns or a list of rows, got "
            f"{type(data).__name__}"
        )
    if len(set(names)) != len(names):
        raise InvalidArgument(f"the table names a column twice: {names}")
    lengths = {len(c) for c in values}
    if len(lengths) > 1:
        raise InvalidArgument(f"the table's columns have different lengths: {sorted(lengths)}")
    cells = [[_cell(x) for x in column] for column in values]
    encoded = json.dumps({"columns": names, "data": cells}, allow_nan=False).encode()
    return encoded, {"columns": names, "rows": lengths.pop() if lengths else 0}


def _column(values: Any, name: str) -> list[Any]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidArgument(f"column {name!r} is not a list of values")
    return list(values)


def _cell(value: Any) -> Any:
    """A cell as JSON: numbers, text, booleans and null; NaN and infinities as null; numpy
    scalars as their values; anything else as its text."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


# -- delivery --------------------------------------------------------------------------------


def deliver_media(transport: Transport, args: dict[str, Any]) -> None:
    """The writer's side of `log_media`: upload the bytes unless the store has them, record
    them, then drop the spooled copy."""
    from registrum.client import files as f

    source = Path(args["source"])
    f.upload_then(
        transport,
        [f.local_file(source.name, source)],
        lambda manifest: transport.log_media(
            args["run_id"],
            args["key"],
            step=args["step"],
            kind=args["kind"],
            format=args["format"],
            sha256=manifest[0]["sha256"],
            size=manifest[0]["size"],
            meta=args["meta"],
        ),
        label=f"uploading {args['kind']} {args['key']}",
    )
    source.unlink(missing_ok=True)
