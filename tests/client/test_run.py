import math
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import registrum
from registrum.errors import InvalidArgument
from targets import Target


def test_a_run_records_params_tags_and_metrics(target: Target) -> None:
    run = registrum.init(
        project="mnist",
        name="baseline",
        config={"lr": 1e-3, "optimizer": {"name": "adam"}},
        tags={"team": "vision"},
        job_type="train",
        store=target.store,
    )
    for step in range(100):
        run.log({"loss": 1 / (step + 1), "acc": step / 100}, step=step)
    run.config.update({"batch_size": 64})
    run.set_tags({"stage": "baseline"})
    run.finish()
    stored = target.reader.get_run(run.id)
    assert stored.status == "finished" and stored.end_time is not None
    assert stored.name == "baseline" and stored.job_type == "train"
    assert stored.params == {"batch_size": 64, "lr": 1e-3, "optimizer.name": "adam"}
    assert stored.tags == {"stage": "baseline", "team": "vision"}
    assert stored.metrics["loss"].count == 100 and stored.metrics["loss"].last == 1 / 100
    assert list(target.reader.metric_history(run.id, "acc").steps) == list(range(100))
    assert not (target.home / "spool" / run.id).exists()


def test_steps_count_up_when_omitted(target: Target) -> None:
    with registrum.init(project="p", store=target.store) as run:
        run.log({"x": 1.0})
        run.log({"x": 2.0})
        run.log({"x": 3.0}, step=10)
        run.log({"x": 4.0})
    assert list(target.reader.metric_history(run.id, "x").steps) == [0, 1, 10, 11]


def test_nan_and_infinities_are_kept(target: Target) -> None:
    with registrum.init(project="p", store=target.store) as run:
        run.log({"x": math.nan}, step=0)
        run.log({"x": math.inf}, step=1)
        run.log({"x": -math.inf}, step=2)
    values = list(target.reader.metric_history(run.id, "x").values)
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("bad", ["0.5", None, [1.0, 2.0], {"a": 1}, b"1"])
def test_non_numeric_values_raise_at_the_call(target: Target, bad: object) -> None:
    with registrum.init(project="p", store=target.store) as run:
        run.log({"ok": 1.0}, step=0)
        with pytest.raises(InvalidArgument, match="'bad'") as error:
            run.log({"ok": 2.0, "bad": bad}, step=1)
        assert isinstance(error.value, ValueError)
    # The rejected call stored nothing, not even its good values.
    assert list(target.reader.metric_history(run.id, "ok").values) == [1.0]


def test_numpy_scalars_are_numbers(target: Target) -> None:
    np = pytest.importorskip("numpy")
    with registrum.init(project="p", store=target.store) as run:
        run.log({"a": np.float32(0.5), "b": np.int64(3), "c": np.array(2.5)}, step=np.int64(4))
    summaries = target.reader.get_run(run.id).metrics
    assert {k: (s.last, s.last_step) for k, s in summaries.items()} == {
        "a": (0.5, 4),
        "b": (3.0, 4),
        "c": (2.5, 4),
    }


def test_an_exception_in_the_with_block_marks_the_run_failed(target: Target) -> None:
    with pytest.raises(RuntimeError), registrum.init(project="p", store=target.store) as run:
        run.log({"x": 1.0})
        raise RuntimeError("training blew up")
    assert target.reader.get_run(run.id).status == "failed"


def test_four_threads_logging_into_one_run(target: Target) -> None:
    run = registrum.init(project="p", store=target.store)

    def work(k: int) -> None:
        for i in range(5000):
            run.log({f"t{k}": float(i)}, step=i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    for k in range(4):
        history = target.reader.metric_history(run.id, f"t{k}")
        assert list(history.steps) == list(range(5000))
        assert list(history.values) == [float(i) for i in range(5000)]


def test_resume_by_id_continues_the_run(target: Target) -> None:
    first = registrum.init(project="p", store=target.store, config={"lr": 0.1})
    first.log({"loss": 1.0}, step=0)
    first.finish()
    again = registrum.init(project="p", id=first.id, store=target.store, config={"lr": 0.1})
    again.log({"loss": 0.5}, step=1)
    assert target.reader.get_run(first.id).status == "running"
    again.finish()
    stored = target.reader.get_run(first.id)
    assert stored.status == "finished" and stored.metrics["loss"].count == 2


def test_active_run_is_the_latest_live_one(target: Target) -> None:
    assert registrum.active_run() is None
    outer = registrum.init(project="p", store=target.store)
    assert registrum.active_run() is outer
    inner = registrum.init(project="p", store=target.store, parent=outer, job_type="evaluation")
    assert registrum.active_run() is inner
    inner.finish()
    assert registrum.active_run() is outer
    outer.finish()
    assert registrum.active_run() is None
    assert target.reader.get_run(inner.id).parent_id == outer.id


def test_disabled_mode_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_MODE", "disabled")
    with registrum.init(project="p", config={"a": 1}) as run:
        run.log({"x": 1.0})
        run.set_tags({"t": "v"})
        assert run.disabled
    assert not (tmp_path / "home").exists()


def test_bad_arguments_raise_at_construction(target: Target) -> None:
    with pytest.raises(InvalidArgument):
        registrum.init(project="a/b", store=target.store)
    with pytest.raises(InvalidArgument):
        registrum.init(project="p", id="no spaces allowed", store=target.store)
    with pytest.raises(InvalidArgument):
        registrum.init(project="p", config=[1, 2], store=target.store)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        registrum.init(project="p", mode="sometimes", store=target.store)
    with registrum.init(project="p", store=target.store) as run:
        with pytest.raises(InvalidArgument):
            run.log([1.0])  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            run.log({"x": 1.0}, step="3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="finished"):
        run.set_tags({"late": "yes"})


WRITER = """
import sys, registrum
with registrum.init(project="p", id=sys.argv[1], store=sys.argv[2] or None) as run:
    for i in range(5000):
        run.log({"from_child": float(i)}, step=i)
"""


def test_two_processes_on_one_machine_write_one_run(target: Target) -> None:
    run_id = uuid.uuid4().hex
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, run_id, target.store or ""],
        env={**os.environ, "REGISTRUM_HOME": str(target.home)},
    )
    with registrum.init(project="p", id=run_id, store=target.store) as run:
        for i in range(5000):
            run.log({"from_parent": float(i)}, step=i)
    assert child.wait(timeout=120) == 0
    stored = target.reader.get_run(run_id)
    assert stored.metrics["from_parent"].count == stored.metrics["from_child"].count == 5000
    assert not (target.home / "spool" / run_id).exists()


def test_a_child_whose_parent_arrives_later_waits_for_it(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.3")
    parent_id = uuid.uuid4().hex
    child = registrum.init(project="p", parent=parent_id, store=target.store)
    child.log({"x": 1.0})
    with registrum.init(project="p", id=parent_id, store=target.store):
        pass
    child.finish(timeout=30)
    assert target.reader.get_run(child.id).parent_id == parent_id


def test_registered_versions_carry_tags_and_runs_list_their_artifacts(
    target: Target, tmp_path: Path
) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w" * 100)
    with registrum.init(project="p", store=target.store) as run:
        run.log_artifact(weights, name="notes", type="notes")
        version = run.register_model("m", path=weights, tags={"trial": 3})
    assert version is not None and version.tags == {"trial": "3"}
    with registrum.Client(store=target.store) as client:
        assert [a.type for a in client.artifacts("p", run_id=run.id, type="model")] == ["model"]
        assert len(client.artifacts("p", run_id=run.id)) == 2
