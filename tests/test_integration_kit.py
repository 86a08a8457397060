import pickle
import re
import sys
from typing import Any

import pytest

import registrum
from registrum import integration
from registrum.client.names import run_name
from registrum.client.sync import sync_spools
from registrum.errors import StoreUnavailable
from targets import Target

QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}


def model_version(target: Target, name: str = "kit-model", flavor: str = "toy") -> str:
    """A registered version of one small file; returns its ref."""
    with registrum.init("p", store=target.store, **QUICK) as run:
        folder = target.home.parent / "model"
        folder.mkdir(exist_ok=True)
        (folder / "weights.txt").write_text("0.5 0.25\n")
        mv = run.register_model(name, path=folder / "weights.txt", flavor=flavor)
        assert mv is not None
    return f"{name}@{mv.version}"


def evaluated_by(target: Target, name: str) -> set[str]:
    """The runs in the model's evaluation history (runs that used a version and logged)."""
    return {row["run_id"] for row in target.reader.evaluations(name)["evaluations"]}


def used_versions(target: Target, run_id: str) -> list[int]:
    inputs = target.reader.run_inputs(run_id)
    return [i["target_id"] for i in inputs if i["kind"] == "model_version"]


def test_require_names_the_extra_that_installs_a_missing_framework() -> None:
    assert integration.require("json", extra="json") is sys.modules["json"]
    message = 'registrum_xgboost needs xgboost: pip install "registrum[xgboost]"'
    with pytest.raises(ImportError, match=re.escape(message)):
        integration.require("registrum_no_such_module_xgb", extra="xgboost", needs="xgboost")


def test_a_run_it_starts_it_finishes_and_a_joined_run_it_leaves_open(target: Target) -> None:
    tracking = integration.Tracking("Kit", "p", {"store": target.store, **QUICK})
    run = tracking.begin(job_type="train")
    assert tracking.owns and registrum.active_run() is run
    tracking.end("finished")
    started = target.reader.get_run(run.id)
    assert started.status == "finished" and started.job_type == "train"
    assert started.name == run_name(run.id)

    with registrum.init("p", store=target.store, **QUICK) as outer:
        joined = integration.Tracking("Kit", "elsewhere", {"store": target.store})
        assert joined.begin(job_type="evaluation") is outer and not joined.owns
        joined.end("failed")
        assert target.reader.get_run(outer.id).status == "running"
    assert target.reader.get_run(outer.id).status == "finished"


def test_generated_names_are_readable_and_follow_the_run_id() -> None:
    name = run_name("0123456789abcdef0123456789abcdef")
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,2}", name)
    assert name == run_name("0123456789abcdef0123456789abcdef")
    assert len({run_name(f"{i:032x}") for i in range(200)}) > 150


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_a_given_name_and_job_type_are_kept(target: Target) -> None:
    options = {"store": target.store, "name": "mine", "job_type": "tuning", **QUICK}
    tracking = integration.Tracking("Kit", "p", options)
    run = tracking.begin(job_type="train")
    tracking.end()
    recorded = target.reader.get_run(run.id)
    assert (recorded.name, recorded.job_type) == ("mine", "tuning")


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_the_guard_warns_once_per_place_on_one_line(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_STRICT", "0")
    tracking = integration.Tracking("Kit", "p", {"store": target.store, **QUICK})
    run = tracking.begin()
    with pytest.warns(RuntimeWarning) as caught:
        for _ in range(3):
            with tracking.guard("on_epoch_end"):
                raise RuntimeError("broken\nacross lines")
    assert [str(w.message) for w in caught] == [
        "registrum: Kit.on_epoch_end failed; training goes on without it: "
        "RuntimeError: broken across lines"
    ]
    assert tracking.run is run
    tracking.end()
    assert target.reader.get_run(run.id).status == "finished"


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_under_strict_the_guard_fails_the_run_and_raises(target: Target) -> None:
    tracking = integration.Tracking("Kit", "p", {"store": target.store, **QUICK})
    run = tracking.begin()
    with pytest.raises(RuntimeError, match="broken"), tracking.guard("on_fit_end"):
        raise RuntimeError("broken")
    assert tracking.run is None and registrum.active_run() is None
    assert target.reader.get_run(run.id).status == "failed"


def test_an_unreachable_store_only_warns_even_under_strict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    warned: set[str] = set()
    expected = pytest.warns(RuntimeWarning, match="Sweep.record failed.*StoreUnavailable")
    with expected, integration.guard("Sweep.record", warned):
        raise StoreUnavailable("down")
    with pytest.raises(ValueError), integration.guard("Sweep.record", warned):
        raise ValueError("a bug")


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_pickling_keeps_the_options_only(target: Target) -> None:
    with registrum.init("p", store=target.store, **QUICK) as parent:
        tracking = integration.Tracking("Kit", "p", {"parent": parent, "store": target.store})
        tracking.begin()
        copied = pickle.loads(pickle.dumps(tracking))
        assert copied.run_options == {"parent": parent.id, "store": target.store}
        assert copied.run is None and copied.run_id is None and not copied.owns
        kept = integration.Tracking("Kit", "p", {}, keeps_run_id=True)
        kept.run_id = "abc"
        assert pickle.loads(pickle.dumps(kept)).run_id == "abc"
        tracking.end()


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_the_scratch_folder_goes_at_the_end(target: Target) -> None:
    tracking = integration.Tracking("Kit", "p", {"store": target.store, **QUICK})
    tracking.begin()
    folder = tracking.scratch()
    (folder / "model.bin").write_bytes(b"1")
    tracking.end()
    assert not folder.exists()


def test_log_model_registers_under_register_as(target: Target) -> None:
    options = {"store": target.store, **QUICK}
    tracking = integration.Tracking("Kit", "p", options, register_as="kit", aliases=["new"])
    tracking.begin()
    path = tracking.scratch() / "model.txt"
    path.write_text("weights")
    tracking.log_model(path, flavor="toy", metadata={"file": "model.txt"}, metrics={"acc": 0.5})
    tracking.end()
    version = target.reader.get_model_version("kit@new")
    assert version.flavor == "toy" and version.metrics == {"acc": 0.5}
    assert version.artifact.metadata["file"] == "model.txt"


def test_fetch_model_records_the_use_in_the_active_run(target: Target) -> None:
    ref = model_version(target)
    with registrum.init("p", store=target.store, job_type="evaluation", **QUICK) as ev:
        version, folder = integration.fetch_model(ref, flavor="toy")
        assert (folder / "weights.txt").read_text() == "0.5 0.25\n"
        ev.log({"test_acc": 0.75})
    assert version.ref == ref and used_versions(target, ev.id) == [version.id]
    assert evaluated_by(target, "kit-model") == {ev.id}


def test_fetch_model_records_the_use_in_an_offline_run(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = model_version(target)
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    with registrum.init("p", store=target.store, job_type="evaluation", **QUICK) as ev:
        version, folder = integration.fetch_model(ref, flavor="toy", store=target.store)
        assert (folder / "weights.txt").exists()
        ev.log({"test_acc": 0.75})
    assert evaluated_by(target, "kit-model") == set()  # in the spool until delivered
    monkeypatch.delenv("REGISTRUM_MODE")
    (report,) = sync_spools(target.home / "spool", home=target.home, store=target.store)
    assert report.error is None and used_versions(target, ev.id) == [version.id]
    assert evaluated_by(target, "kit-model") == {ev.id}


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_fetch_model_outside_a_run_records_nothing_and_refuses_another_flavor(
    target: Target,
) -> None:
    ref = model_version(target)
    with registrum.init("p", store=target.store, mode="disabled"):
        _, folder = integration.fetch_model(ref, flavor="toy")
    assert folder.is_dir() and evaluated_by(target, "kit-model") == set()
    with pytest.raises(ValueError, match="is a 'toy' model, not one Thing logged"):
        integration.fetch_model(ref, flavor="keras", logged_by="Thing")
    with pytest.raises(ValueError, match="not one RegistrumCallback logged"):
        integration.fetch_model(ref, flavor="toy", needs=("checkpoint",))


def test_the_client_tags_a_model_version(target: Target) -> None:
    ref = model_version(target)
    with registrum.Client(target.store) as client:
        client.set_version_tags(ref, {"optuna.trial": "3"})
        tagged = client.set_version_tags(ref, {"stage": "ok"})
    assert tagged.tags == {"optuna.trial": "3", "stage": "ok"}
    assert target.reader.get_model_version(ref).tags == tagged.tags
