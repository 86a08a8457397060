"""`eval_set=` of `TrackedEstimator`: the shapes it takes, checked, as names to (X, y) pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registrum.integration import validation

EVAL_SET_SHAPES = (
    "an (X, y) tuple, a list of (X, y) pairs, or a dict of names to (X, y) pairs "
    "(y may be None for estimators scored without targets)"
)


def eval_sets(eval_set: Any) -> dict[str, tuple[Any, Any]]:
    """`eval_set` as names to (X, y) pairs; raises ValueError on any other shape."""
    if eval_set is None:
        return {}
    if isinstance(eval_set, tuple):
        return {"eval": _pair(eval_set, "eval_set")}
    if isinstance(eval_set, list):
        if not eval_set:
            raise ValueError(f"eval_set is an empty list; give {EVAL_SET_SHAPES}")
        if len(eval_set) == 1:
            return {"eval": _pair(eval_set[0], "eval_set[0]")}
        return {f"eval_{i}": _pair(pair, f"eval_set[{i}]") for i, pair in enumerate(eval_set)}
    if isinstance(eval_set, Mapping):
        for key in eval_set:
            validation.name(key, "eval_set name")
        return {key: _pair(pair, f"eval_set[{key!r}]") for key, pair in eval_set.items()}
    raise ValueError(f"eval_set must be {EVAL_SET_SHAPES}; got a {type(eval_set).__name__}")


def _pair(pair: Any, where: str) -> tuple[Any, Any]:
    problem = None
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        got = f"a {type(pair).__name__}"
        if isinstance(pair, tuple | list):
            got += f" of {len(pair)} items"
        problem = f"{where} must be an (X, y) pair, got {got}"
    else:
        rows_x, rows_y = _rows(pair[0]), _rows(pair[1])
        if rows_x is None:
            problem = (
                f"{where}: X must be an array, a frame or a list, got {type(pair[0]).__name__}"
            )
        elif pair[1] is not None and rows_y is not None and rows_x != rows_y:
            problem = f"{where}: X has {rows_x} rows but y has {rows_y}"
    if problem is not None:
        raise ValueError(f"{problem}; eval_set takes {EVAL_SET_SHAPES}")
    return pair[0], pair[1]


def _rows(data: Any) -> int | None:
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    if hasattr(data, "__len__") and not isinstance(data, str | bytes):
        return len(data)
    return None
