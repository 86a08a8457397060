"""`registrum.load_model`: any registered version, whatever its framework, as a `Model` that
predicts on frames, arrays, lists of records and dicts of columns, checked against the
version's signature."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from registrum.entities import ModelVersion
from registrum.errors import InvalidArgument
from registrum.flavors import Flavor, flavor


class Model:
    """A registered model version, loaded.

    Attributes:
        native: the framework's own object (an sklearn estimator, an XGBoost booster or
            estimator, a LightningModule in eval mode, a Keras model).
        record: the `ModelVersion` it was loaded from.
    """

    def __init__(self, record: ModelVersion, native: Any, flavor: Flavor) -> None:
        self.record = record
        self.native = native
        self._flavor = flavor

    @property
    def name(self) -> str:
        return self.record.model

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def flavor(self) -> str:
        return self._flavor.name

    @property
    def signature(self) -> dict[str, Any] | None:
        return self.record.signature

    def predict(self, data: Any) -> Any:
        """The model's predictions for `data`: a pandas frame, a numpy array, a list of
        records (dicts), a dict of columns, or a list of rows. `InvalidArgument` names the
        column or the shape that does not fit the version's signature."""
        return self._flavor.predict(self.native, prepare(data, self.signature), self.signature)

    def __repr__(self) -> str:
        return f"<registrum.Model {self.ref} ({self.flavor})>"


def load_model(ref: str, *, store: str | None = None) -> Model:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) into the verified
    local cache and loads it with its flavor's integration. Inside an active run of the same
    store the run records that it used the version (lineage).

    Args:
        ref: the model version.
        store: where it is registered (default: the active run's store, else
            `REGISTRUM_URL`, else the embedded store).
    """
    from registrum.integration import fetch_model

    version, folder = fetch_model(ref, flavor=None, store=store)
    found = flavor(version.flavor)
    return Model(version, found.load(version, folder), found)


# -- inputs ----------------------------------------------------------------------------------


def prepare(data: Any, signature: Mapping[str, Any] | None) -> Any:
    """`data` as the signature asks: a frame of its named columns (missing ones refused,
    others left out, in its order), or an array of its shape and dtype (the first dimension
    is the rows, of any number); as given where there is no signature."""
    import numpy as np  # here, not at import: `import registrum` stays light

    kind, inputs = signature_inputs(signature)
    if kind == "columns":
        return _frame(data, [str(i["name"]) for i in inputs])
    if kind == "array":
        return _array(data, inputs[0]["shape"], inputs[0].get("dtype"))
    if isinstance(data, Mapping) or _records(data):
        return _frame(data, None)
    return data if hasattr(data, "shape") else np.asarray(data)


def signature_inputs(signature: Mapping[str, Any] | None) -> tuple[str | None, list[Any]]:
    """What a signature's inputs are: "columns" (each named, none with a shape), "array"
    (one input with a shape), or None (no signature, or another form); and the inputs."""
    inputs = list((signature or {}).get("inputs") or [])
    if inputs and all(i.get("name") is not None and "shape" not in i for i in inputs):
        return "columns", inputs
    if len(inputs) == 1 and isinstance(inputs[0].get("shape"), list):
        return "array", inputs
    return None, inputs


def _records(data: Any) -> bool:
    return (
        isinstance(data, Sequence)
        and not isinstance(data, str)
        and bool(data)
        and all(isinstance(row, Mapping) for row in data)
    )


def _frame(data: Any, names: list[str] | None) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, Mapping):
        try:
            frame = pd.DataFrame({str(k): np.atleast_1d(np.asarray(v)) for k, v in data.items()})
        except ValueError as exc:
            raise InvalidArgument(f"the columns do not have one length each: {exc}") from None
    elif _records(data):
        frame = pd.DataFrame.from_records(list(data))
    else:
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[None, :]
        if names is None or array.ndim != 2 or array.shape[1] != len(names):
            width = "?" if array.ndim != 2 else array.shape[1]
            raise InvalidArgument(
                f"rows of {width} values do not fit the model's {len(names or [])} columns "
                f"({', '.join(names or [])}): send a frame, records or columns by name"
            )
        frame = pd.DataFrame(array, columns=names)
    if names is None or list(frame.columns) == names:
        return frame  # already the model's columns, in its order: no copy
    frame.columns = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidArgument(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}: "
            f"the model takes {', '.join(names)}"
        )
    return frame[names]


_TORCH = re.compile(r"^torch\.")


def _array(data: Any, shape: list[Any], dtype: str | None) -> Any:
    import numpy as np

    if isinstance(data, Mapping) or _records(data):
        raise InvalidArgument(
            f"the model takes an array of shape (rows, {', '.join(map(str, shape[1:]))}), "
            "not named columns"
        )
    kind = None if dtype is None else _TORCH.sub("", dtype)
    try:
        array = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=kind)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"the input is not an array of {kind or 'numbers'}: {exc}") from None
    want = [None, *shape[1:]]
    if array.ndim == len(want) - 1:
        array = array[None, ...]  # one row
    fits = array.ndim == len(want) and all(
        w is None or w == got for w, got in zip(want[1:], array.shape[1:], strict=True)
    )
    if not fits:
        expected = ", ".join("N" if w is None else str(w) for w in want)
        raise InvalidArgument(
            f"the input has shape {tuple(array.shape)}; the model takes ({expected})"
        )
    return array
