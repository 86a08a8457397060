"""Contract tests of metric ingestion, summaries, history and downsampling."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from registrum.entities import IngestResult, MetricHistory
from registrum.errors import InvalidArgument, InvalidName, MetricNotFound, RunNotFound

NAN, INF = math.nan, math.inf


def same_floats(got: Sequence[float], want: Sequence[float]) -> bool:
    """Equal element by element, bit for bit, NaN equal to NaN."""
    got, want = [float(x) for x in got], [float(x) for x in want]
    return len(got) == len(want) and all(
        (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        for a, b in zip(got, want, strict=True)
    )


def history(store: Any, run_id: str, key: str, **kwargs: Any) -> tuple[list[int], list[float]]:
    h = store.metric_history(run_id, key, **kwargs)
    return [int(s) for s in h.steps], [float(x) for x in h.values]


def state(store: Any, run_id: str) -> dict[str, Any]:
    """Everything a rejected call must leave as it was: summaries and every history."""
    run = store.get_run(run_id)
    out: dict[str, Any] = {"run": repr(run)}
    for key in run.metrics:
        out[key] = repr(store.metric_history(run_id, key).to_dict())
    return out


@pytest.fixture
def run_id(store: Any) -> str:
    return str(store.create_run("metrics").id)


# -- ingestion ---------------------------------------------------------------------


def test_log_batch(store: Any, run_id: str) -> None:
    result = store.log_metrics(
        run_id,
        seq=0,
        keys=["loss", "acc", "loss", "acc", "train/lr"],
        steps=[0, 0, 1, 1, 0],
        values=[0.9, 0.5, 0.7, 0.6, 1e-3],
        timestamps=[10.0, 10.0, 11.0, 11.0, 10.5],
    )
    assert isinstance(result, IngestResult)
    assert result == IngestResult(run_id=run_id, seq=0, points=5, duplicate=False)
    h = store.metric_history(run_id, "loss")
    assert isinstance(h, MetricHistory)
    assert (h.run_id, h.key, h.total, h.downsampled) == (run_id, "loss", 2, False)
    assert list(h.steps) == [0, 1]
    assert same_floats(h.values, [0.9, 0.7])
    assert same_floats(h.timestamps, [10.0, 11.0])
    assert history(store, run_id, "acc") == ([0, 1], [0.5, 0.6])
    assert history(store, run_id, "train/lr") == ([0], [1e-3])
    assert sorted(store.get_run(run_id).metrics) == ["acc", "loss", "train/lr"]


def test_history_survives_the_wire_format(store: Any, run_id: str) -> None:
    store.log_metrics(
        run_id, seq=0, keys=["x"] * 4, steps=[0, 1, 2, 3], values=[1.0, NAN, INF, -INF]
    )
    h = store.metric_history(run_id, "x")
    back = MetricHistory.from_dict(json.loads(json.dumps(h.to_dict(), allow_nan=False)))
    assert back.steps == [0, 1, 2, 3]
    assert same_floats(back.values, [1.0, NAN, INF, -INF])
    assert (back.total, back.downsampled) == (4, False)


def test_default_timestamps_are_now(store: Any, run_id: str) -> None:
    before = time.time()
    store.log_metrics(run_id, seq=0, keys=["x", "x"], steps=[0, 1], values=[1.0, 2.0])
    after = time.time()
    h = store.metric_history(run_id, "x")
    assert all(before - 1 <= t <= after + 1 for t in h.timestamps)


def test_numpy_columns(store: Any, run_id: str) -> None:
    n = 50_000
    steps = np.arange(n, dtype=np.int64)
    values = np.linspace(0.0, 1.0, n)
    result = store.log_metrics(run_id, seq=0, keys=["x"] * n, steps=steps, values=values)
    assert result.points == n
    h = store.metric_history(run_id, "x")
    assert h.total == n
    assert np.array_equal(np.asarray(h.steps), steps)
    assert np.array_equal(np.asarray(h.values), values)
    summary = store.get_run(run_id).metrics["x"]
    assert (summary.count, summary.last_step, summary.last, summary.min, summary.max) == (
        n,
        n - 1,
        1.0,
        0.0,
        1.0,
    )


def test_values_are_stored_exactly(store: Any, run_id: str) -> None:
    values = [0.1 + 0.2, 1 / 3, 5e-324, -0.0, 1.7976931348623157e308, -2.5e-300, 7]
    store.log_metrics(
        run_id, seq=0, keys=["x"] * len(values), steps=list(range(len(values))), values=values
    )
    assert same_floats(store.metric_history(run_id, "x").values, values)


def test_int64_steps(store: Any, run_id: str) -> None:
    steps = [-(2**63), 0, 2**63 - 1]
    store.log_metrics(run_id, seq=0, keys=["x"] * 3, steps=steps, values=[1.0, 2.0, 3.0])
    assert history(store, run_id, "x") == (steps, [1.0, 2.0, 3.0])
    assert store.get_run(run_id).metrics["x"].last_step == 2**63 - 1


def test_empty_batch(store: Any, run_id: str) -> None:
    result = store.log_metrics(run_id, seq=0, keys=[], steps=[], values=[])
    assert (result.points, result.duplicate) == (0, False)
    assert store.log_metrics(run_id, seq=0, keys=[], steps=[], values=[]).duplicate
    assert store.get_run(run_id).metrics == {}


# -- idempotent retries --------------------------------------------------------------


def test_retried_batch_is_stored_once(store: Any, run_id: str) -> None:
    batch = {"keys": ["x", "y"], "steps": [1, 1], "values": [1.0, 2.0], "timestamps": [5.0, 5.0]}
    assert not store.log_metrics(run_id, seq=7, **batch).duplicate
    before = state(store, run_id)
    retried = store.log_metrics(run_id, seq=7, **batch)
    assert retried == IngestResult(run_id=run_id, seq=7, points=2, duplicate=True)
    assert state(store, run_id) == before
    assert store.get_run(run_id).metrics["x"].count == 1


def test_seq_identifies_a_batch_whatever_it_holds(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=1, keys=["x"], steps=[1], values=[1.0])
    before = state(store, run_id)
    assert store.log_metrics(
        run_id, seq=1, keys=["x", "z"], steps=[2, 2], values=[9.0, 9.0]
    ).duplicate
    assert state(store, run_id) == before
    assert not store.log_metrics(run_id, seq=2, keys=["x"], steps=[2], values=[9.0]).duplicate
    assert history(store, run_id, "x") == ([1, 2], [1.0, 9.0])


def test_seq_is_per_run(store: Any, run_id: str) -> None:
    other = store.create_run("metrics").id
    assert not store.log_metrics(run_id, seq=0, keys=["x"], steps=[0], values=[1.0]).duplicate
    assert not store.log_metrics(other, seq=0, keys=["x"], steps=[0], values=[2.0]).duplicate
    assert history(store, run_id, "x") == ([0], [1.0])
    assert history(store, other, "x") == ([0], [2.0])


def test_seq_order_does_not_matter(store: Any, run_id: str) -> None:
    for seq in (5, 2, 9, 0):
        store.log_metrics(run_id, seq=seq, keys=["x"], steps=[seq], values=[float(seq)])
    for seq in (0, 2, 5, 9):
        assert store.log_metrics(run_id, seq=seq, keys=["x"], steps=[seq], values=[0.0]).duplicate
    assert history(store, run_id, "x") == ([0, 2, 5, 9], [0.0, 2.0, 5.0, 9.0])


# -- NaN and infinities ---------------------------------------------------------------


def test_nan_and_infinities_round_trip(store: Any, run_id: str) -> None:
    values = [1.0, NAN, INF, -INF, -2.0]
    store.log_metrics(run_id, seq=0, keys=["x"] * 5, steps=[0, 1, 2, 3, 4], values=values)
    assert same_floats(store.metric_history(run_id, "x").values, values)
    s = store.get_run(run_id).metrics["x"]
    assert (s.last, s.last_step, s.min, s.max, s.count) == (-2.0, 4, -INF, INF, 5)


@pytest.mark.parametrize("last", [NAN, INF, -INF])
def test_non_finite_last_value(store: Any, run_id: str, last: float) -> None:
    store.log_metrics(run_id, seq=0, keys=["x", "x"], steps=[0, 1], values=[3.0, last])
    s = store.get_run(run_id).metrics["x"]
    assert same_floats([s.last], [last])
    assert s.last_step == 1
    finite_or_inf = [3.0] if math.isnan(last) else [3.0, last]
    assert (s.min, s.max) == (min(finite_or_inf), max(finite_or_inf))


def test_min_max_ignore_nan(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=0, keys=["x"] * 3, steps=[0, 1, 2], values=[NAN, 4.0, NAN])
    store.log_metrics(run_id, seq=1, keys=["x"] * 2, steps=[3, 4], values=[NAN, 2.0])
    s = store.get_run(run_id).metrics["x"]
    assert (s.min, s.max, s.count, s.last) == (2.0, 4.0, 5, 2.0)


def test_all_nan_series(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=0, keys=["x", "x"], steps=[0, 1], values=[NAN, NAN])
    s = store.get_run(run_id).metrics["x"]
    assert math.isnan(s.last)
    assert (s.min, s.max, s.count) == (None, None, 2)
    store.log_metrics(run_id, seq=1, keys=["x"], steps=[2], values=[5.0])
    s = store.get_run(run_id).metrics["x"]
    assert (s.last, s.min, s.max, s.count) == (5.0, 5.0, 5.0, 3)


# -- summaries -------------------------------------------------------------------------


def test_summaries_stay_current_across_batches(store: Any, run_id: str) -> None:
    store.log_metrics(
        run_id,
        seq=0,
        keys=["x"] * 3,
        steps=[0, 1, 2],
        values=[5.0, 3.0, 4.0],
        timestamps=[1.0, 2.0, 3.0],
    )
    s = store.get_run(run_id).metrics["x"]
    assert (s.key, s.last, s.last_step, s.last_time, s.min, s.max, s.count) == (
        "x",
        4.0,
        2,
        3.0,
        3.0,
        5.0,
        3,
    )
    store.log_metrics(
        run_id, seq=1, keys=["x"] * 2, steps=[3, 4], values=[9.0, 1.0], timestamps=[4.0, 5.0]
    )
    s = store.get_run(run_id).metrics["x"]
    assert (s.last, s.last_step, s.last_time, s.min, s.max, s.count) == (1.0, 4, 5.0, 1.0, 9.0, 5)
    assert store.metric_summaries(run_id) == store.get_run(run_id).metrics


def test_last_is_the_highest_step_with_out_of_order_batches(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=0, keys=["x"] * 3, steps=[10, 30, 20], values=[1.0, 3.0, 2.0])
    store.log_metrics(run_id, seq=1, keys=["x"] * 2, steps=[5, 25], values=[-7.0, 8.0])
    s = store.get_run(run_id).metrics["x"]
    assert (s.last, s.last_step, s.min, s.max, s.count) == (3.0, 30, -7.0, 8.0, 5)
    assert history(store, run_id, "x") == ([5, 10, 20, 25, 30], [-7.0, 1.0, 2.0, 8.0, 3.0])


def test_equal_steps_keep_logging_order(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=0, keys=["x", "x"], steps=[1, 1], values=[1.0, 2.0])
    store.log_metrics(run_id, seq=1, keys=["x"], steps=[1], values=[3.0])
    store.log_metrics(run_id, seq=2, keys=["x"], steps=[0], values=[0.0])
    assert history(store, run_id, "x") == ([0, 1, 1, 1], [0.0, 1.0, 2.0, 3.0])
    assert store.get_run(run_id).metrics["x"].last == 3.0


def test_summaries_per_key(store: Any, run_id: str) -> None:
    store.log_metrics(run_id, seq=0, keys=["a", "b", "a"], steps=[0, 0, 1], values=[1.0, 10.0, 2.0])
    metrics = store.get_run(run_id).metrics
    assert (metrics["a"].count, metrics["a"].last, metrics["b"].count, metrics["b"].last) == (
        2,
        2.0,
        1,
        10.0,
    )


# -- history ---------------------------------------------------------------------------


def test_history_is_ordered_by_step_across_batches(store: Any, run_id: str) -> None:
    rng = np.random.default_rng(0)
    steps = rng.permutation(1000)
    for seq, part in enumerate(np.array_split(steps, 7)):
        store.log_metrics(run_id, seq=seq, keys=["x"] * len(part), steps=part, values=part * 2.0)
    got_steps, got_values = history(store, run_id, "x")
    assert got_steps == list(range(1000))
    assert got_values == [2.0 * s for s in range(1000)]


def test_unknown_metric(store: Any, run_id: str) -> None:
    other = store.create_run("metrics").id
    store.log_metrics(other, seq=0, keys=["loss"], steps=[0], values=[1.0])
    with pytest.raises(MetricNotFound):
        store.metric_history(run_id, "loss")
    with pytest.raises(MetricNotFound):
        store.metric_history(run_id, "never-logged")
    with pytest.raises(LookupError):
        store.metric_history(run_id, "never-logged")


def test_metrics_of_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.log_metrics("missing", seq=0, keys=["x"], steps=[0], values=[1.0])
    with pytest.raises(RunNotFound):
        store.metric_history("missing", "x")
    with pytest.raises(RunNotFound):
        store.metric_summaries("missing")
    assert store.list_projects() == []


# -- downsampling ------------------------------------------------------------------------


def spiky_series(n: int = 10_000) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    steps = np.arange(n, dtype=np.int64) * 10
    values = np.sin(np.arange(n) / 50.0)
    values[1234] = 1e6
    values[7777] = -1e6
    values[4242] = 5e5
    return steps, values


@pytest.mark.parametrize("max_points", [2, 3, 50, 101, 1000])
def test_downsampling_keeps_each_buckets_extremes(store: Any, run_id: str, max_points: int) -> None:
    steps, values = spiky_series()
    store.log_metrics(run_id, seq=0, keys=["x"] * len(steps), steps=steps, values=values)
    h = store.metric_history(run_id, "x", max_points=max_points)
    assert (h.total, h.downsampled) == (len(steps), True)
    assert 2 <= len(h.steps) <= max_points
    assert len(h.steps) == len(h.values) == len(h.timestamps)
    got_steps = [int(s) for s in h.steps]
    assert got_steps == sorted(set(got_steps))
    original = dict(zip(steps.tolist(), values.tolist(), strict=True))
    assert all(original[s] == float(x) for s, x in zip(got_steps, h.values, strict=True))
    assert 1e6 in h.values
    assert -1e6 in h.values
    if max_points >= 50:
        assert 5e5 in h.values


def test_downsampling_with_nan_and_infinities(store: Any, run_id: str) -> None:
    values = np.full(1000, NAN)
    values[100:900] = np.cos(np.arange(800))
    values[500] = INF
    values[600] = -INF
    store.log_metrics(run_id, seq=0, keys=["x"] * 1000, steps=np.arange(1000), values=values)
    h = store.metric_history(run_id, "x", max_points=20)
    assert len(h.values) <= 20
    assert INF in h.values
    assert -INF in h.values


def test_no_downsampling_when_the_series_fits(store: Any, run_id: str) -> None:
    store.log_metrics(
        run_id, seq=0, keys=["x"] * 10, steps=list(range(10)), values=[float(i) for i in range(10)]
    )
    for max_points in (10, 11, 10_000):
        h = store.metric_history(run_id, "x", max_points=max_points)
        assert (h.total, h.downsampled, len(h.steps)) == (10, False, 10)


@pytest.mark.parametrize("max_points", [1, 0, -5, 2.5, "10", True])
def test_invalid_max_points(store: Any, run_id: str, max_points: Any) -> None:
    store.log_metrics(run_id, seq=0, keys=["x"], steps=[0], values=[1.0])
    with pytest.raises(InvalidArgument):
        store.metric_history(run_id, "x", max_points=max_points)


# -- bad input changes nothing -------------------------------------------------------------

GOOD = {"keys": ["x", "x", "x"], "steps": [10, 11, 12], "values": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    ("change", "error", "names"),
    [
        ({"values": [1.0, "abc", 3.0]}, InvalidArgument, "values[1]"),
        ({"values": [1.0, 2.0, None]}, InvalidArgument, "values[2]"),
        ({"values": [True, 2.0, 3.0]}, InvalidArgument, "values[0]"),
        ({"values": "123"}, InvalidArgument, "values"),
        ({"values": [[1.0], 2.0, 3.0]}, InvalidArgument, "values[0]"),
        ({"steps": [10, 11.5, 12]}, InvalidArgument, "steps[1]"),
        ({"steps": [10, 11, "12"]}, InvalidArgument, "steps[2]"),
        ({"steps": [False, 11, 12]}, InvalidArgument, "steps[0]"),
        ({"steps": [10, 2**63, 12]}, InvalidArgument, "64 bits"),
        ({"steps": np.array([1.0, 2.0, 3.0])}, InvalidArgument, "steps"),
        ({"steps": [10, 11]}, InvalidArgument, "equally long"),
        ({"values": [1.0, 2.0, 3.0, 4.0]}, InvalidArgument, "equally long"),
        ({"timestamps": [1.0]}, InvalidArgument, "equally long"),
        ({"timestamps": [1.0, "now", 3.0]}, InvalidArgument, "timestamps[1]"),
        ({"keys": ["x", "", "x"]}, InvalidName, "keys[1]"),
        ({"keys": ["x", "bad\x00key", "x"]}, InvalidName, "keys[1]"),
        ({"keys": ["x", "k" * 257, "x"]}, InvalidName, "keys[1]"),
        ({"keys": ["x", 5, "x"]}, InvalidName, "keys[1]"),
        ({"keys": "xxx"}, InvalidArgument, "keys"),
        ({"seq": -1}, InvalidArgument, "seq"),
        ({"seq": 1.0}, InvalidArgument, "seq"),
        ({"seq": "1"}, InvalidArgument, "seq"),
    ],
)
def test_bad_batch_changes_nothing(
    store: Any, run_id: str, change: dict[str, Any], error: type[Exception], names: str
) -> None:
    store.log_metrics(run_id, seq=0, keys=["x", "y"], steps=[0, 0], values=[0.5, 0.5])
    before = state(store, run_id)
    batch = {"seq": 1, **GOOD, **change}
    with pytest.raises(error) as info:
        store.log_metrics(run_id, **batch)
    assert names in str(info.value)
    assert state(store, run_id) == before
    # The rejected batch did not use up its sequence number.
    assert not store.log_metrics(run_id, seq=1, **GOOD).duplicate
    assert history(store, run_id, "x") == ([0, 10, 11, 12], [0.5, 1.0, 2.0, 3.0])


def test_bad_value_error_names_the_index(store: Any, run_id: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        store.log_metrics(run_id, seq=0, keys=["x"] * 3, steps=[0, 1, 2], values=[1.0, 2.0, "abc"])
    assert "values[2]" in str(info.value)
    assert "abc" in str(info.value)
    assert store.get_run(run_id).metrics == {}
    with pytest.raises(MetricNotFound):
        store.metric_history(run_id, "x")


def test_keys_may_group_with_slashes_and_dots(store: Any, run_id: str) -> None:
    keys = ["train/loss", "val/acc.top5", "k" * 256]
    store.log_metrics(run_id, seq=0, keys=keys, steps=[0, 0, 0], values=[1.0, 2.0, 3.0])
    assert sorted(store.get_run(run_id).metrics) == sorted(keys)
