"""Contract tests of projects, runs, their lifecycle, params, tags, environment and code version."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from registrum.entities import Run
from registrum.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidName,
    InvalidTransition,
    ProjectNotFound,
    RunNotFound,
)

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("x" * 257, id="too-long"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x7fb", id="del"),
    pytest.param(" padded", id="leading-space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a@b", id="at"),
    pytest.param(42, id="not-a-string"),
]
BAD_RUN_IDS = ["", "has space", "a/b", "a.b", "x" * 65, "ü"]


# -- projects -----------------------------------------------------------------


def test_project_create_get_list(store: Any) -> None:
    created = store.create_project("vision", description="image models")
    assert created.name == "vision"
    assert created.description == "image models"
    assert store.get_project("vision") == created
    store.create_project("audio")
    assert [p.name for p in store.list_projects()] == ["audio", "vision"]


def test_project_twice_is_already_exists(store: Any) -> None:
    store.create_project("vision", description="first")
    with pytest.raises(AlreadyExists):
        store.create_project("vision", description="second")
    assert store.get_project("vision").description == "first"


def test_unknown_project(store: Any) -> None:
    with pytest.raises(ProjectNotFound):
        store.get_project("nope")


def test_name_limit_is_256_characters(store: Any) -> None:
    assert store.create_project("p" * 256).name == "p" * 256
    assert store.create_run("r" * 256).project == "r" * 256


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_project_name_creates_nothing(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidName):
        store.create_project(bad)
    with pytest.raises(InvalidName):
        store.create_run(bad)
    assert store.list_projects() == []


def test_errors_are_lookup_and_value_errors(store: Any) -> None:
    with pytest.raises(LookupError):
        store.get_run("missing")
    with pytest.raises(ValueError):
        store.create_project("")


# -- creating and resuming runs -------------------------------------------------


def test_create_run(store: Any) -> None:
    run = store.create_run(
        "mnist",
        name="baseline/1",
        job_type="train",
        user="ada",
        host="gpu-01",
        description="first try",
        tags={"team": "vision"},
    )
    assert isinstance(run, Run)
    assert run.project == "mnist"
    assert run.status == "running"
    assert (run.name, run.job_type, run.user, run.host) == ("baseline/1", "train", "ada", "gpu-01")
    assert run.description == "first try"
    assert run.parent_id is None
    assert run.end_time is None
    assert run.heartbeat_at is not None
    assert run.tags == {"team": "vision"}
    assert run.params == {}
    assert run.metrics == {}
    assert store.get_run(run.id) == run
    assert [p.name for p in store.list_projects()] == ["mnist"]


def test_generated_ids_are_unique(store: Any) -> None:
    ids = {store.create_run("p").id for _ in range(5)}
    assert len(ids) == 5


def test_client_made_run_id(store: Any) -> None:
    run = store.create_run("p", run_id="rank-shared_01", start_time=1_700_000_000.5)
    assert run.id == "rank-shared_01"
    assert run.start_time == 1_700_000_000.5
    assert store.get_run("rank-shared_01") == run


@pytest.mark.parametrize("bad", BAD_RUN_IDS)
def test_invalid_run_id_creates_nothing(store: Any, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        store.create_run("p", run_id=bad)
    with pytest.raises(InvalidArgument):
        store.get_run(bad)
    assert store.list_projects() == []


def test_resume_by_creating_with_existing_id(store: Any) -> None:
    first = store.create_run("p", run_id="r1", name="first", config={"lr": 0.1}, tags={"a": "1"})
    store.finish_run("r1", "failed")
    resumed = store.create_run("p", run_id="r1", config={"epochs": 3}, tags={"b": "2"})
    assert resumed.status == "running"
    assert resumed.end_time is None
    assert resumed.name == "first"  # not given: kept
    assert resumed.start_time == first.start_time
    assert resumed.params == {"epochs": 3, "lr": 0.1}
    assert resumed.tags == {"a": "1", "b": "2"}
    renamed = store.create_run("p", run_id="r1", name="second")
    assert renamed.name == "second"


def test_resume_in_other_project_is_already_exists(store: Any) -> None:
    store.create_run("p", run_id="r1")
    store.finish_run("r1")
    before = store.get_run("r1")
    with pytest.raises(AlreadyExists):
        store.create_run("other", run_id="r1", name="x", config={"lr": 1})
    assert store.get_run("r1") == before
    assert [p.name for p in store.list_projects()] == ["p"]


def test_parent_run(store: Any) -> None:
    parent = store.create_run("sweep", job_type="sweep")
    child = store.create_run("sweep", parent_id=parent.id, job_type="trial")
    assert child.parent_id == parent.id
    assert store.get_run(child.id).parent_id == parent.id


def test_unknown_parent_is_run_not_found_and_creates_nothing(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.create_run("p", run_id="child", parent_id="missing")
    with pytest.raises(RunNotFound):
        store.get_run("child")
    assert store.list_projects() == []


def test_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound) as info:
        store.get_run("missing")
    assert "missing" in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "a\x01b"},
        {"name": ""},
        {"job_type": "a/b"},
        {"user": "x" * 257},
        {"description": 5},
        {"tags": {"k": ["not", "a", "string"]}},
        {"tags": {"": "v"}},
        {"config": {"a\nb": 1}},
        {"config": ["not", "a", "mapping"]},
    ],
)
def test_invalid_run_fields_create_nothing(store: Any, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        store.create_run("p", run_id="r1", **fields)
    with pytest.raises(RunNotFound):
        store.get_run("r1")
    assert store.list_projects() == []


def test_invalid_fields_on_resume_change_nothing(store: Any) -> None:
    store.create_run("p", run_id="r1", name="keep", config={"lr": 1})
    store.finish_run("r1")
    before = store.get_run("r1")
    with pytest.raises(InvalidArgument):
        store.create_run("p", run_id="r1", name="ok", tags={"k": ["not", "a", "string"]})
    assert store.get_run("r1") == before


# -- lifecycle ----------------------------------------------------------------------


def test_finish_records_end_time(store: Any) -> None:
    run = store.create_run("p")
    done = store.finish_run(run.id)
    assert done.status == "finished"
    assert done.end_time is not None and done.end_time >= run.start_time
    assert store.get_run(run.id) == done


def test_explicit_end_time(store: Any) -> None:
    run = store.create_run("p", start_time=100.0)
    assert store.finish_run(run.id, "killed", end_time=250.5).end_time == 250.5


def test_resume_after_finish_through_status(store: Any) -> None:
    run = store.create_run("p")
    store.finish_run(run.id)
    again = store.set_run_status(run.id, "running")
    assert again.status == "running"
    assert again.end_time is None


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("running", "finished"),
        ("running", "failed"),
        ("running", "crashed"),
        ("running", "killed"),
        ("running", "running"),
        ("finished", "finished"),
        ("failed", "running"),
        ("crashed", "finished"),
        ("crashed", "failed"),
        ("killed", "finished"),
        ("killed", "crashed"),
    ],
)
def test_allowed_transitions(store: Any, start: str, target: str) -> None:
    run = store.create_run("p")
    if start != "running":
        store.set_run_status(run.id, start)
    moved = store.set_run_status(run.id, target)
    assert moved.status == target
    assert (moved.end_time is None) == (target == "running")


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("finished", "failed"),
        ("finished", "crashed"),
        ("finished", "killed"),
        ("failed", "finished"),
        ("failed", "crashed"),
        ("failed", "killed"),
    ],
)
def test_invalid_transitions_change_nothing(store: Any, start: str, target: str) -> None:
    run = store.create_run("p")
    store.set_run_status(run.id, start)
    before = store.get_run(run.id)
    with pytest.raises(InvalidTransition):
        store.set_run_status(run.id, target)
    assert store.get_run(run.id) == before


def test_invalid_status_values(store: Any) -> None:
    run = store.create_run("p")
    with pytest.raises(InvalidArgument):
        store.set_run_status(run.id, "done")
    with pytest.raises(InvalidArgument):
        store.finish_run(run.id, "running")
    with pytest.raises(InvalidArgument):
        store.finish_run(run.id, end_time="yesterday")
    assert store.get_run(run.id) == run


def test_status_of_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.set_run_status("missing", "finished")
    with pytest.raises(RunNotFound):
        store.finish_run("missing")


def test_heartbeat(store: Any) -> None:
    run = store.create_run("p")
    store.heartbeat(run.id)
    beat = store.get_run(run.id).heartbeat_at
    assert beat is not None and beat >= run.heartbeat_at
    with pytest.raises(RunNotFound):
        store.heartbeat("missing")


def test_update_run(store: Any) -> None:
    run = store.create_run("p", name="old", description="old text")
    updated = store.update_run(run.id, name="new")
    assert (updated.name, updated.description) == ("new", "old text")
    updated = store.update_run(run.id, description="new text")
    assert (updated.name, updated.description) == ("new", "new text")
    assert store.update_run(run.id) == updated
    assert store.get_run(run.id) == updated


def test_update_run_rejects_bad_input(store: Any) -> None:
    run = store.create_run("p", name="keep")
    with pytest.raises(InvalidName):
        store.update_run(run.id, name="bad\x00name")
    with pytest.raises(InvalidArgument):
        store.update_run(run.id, description=3)
    assert store.get_run(run.id) == run
    with pytest.raises(RunNotFound):
        store.update_run("missing", name="x")


# -- params -------------------------------------------------------------------------

TYPED = {
    "int": 3,
    "big": 2**53 + 1,
    "negative": -7,
    "float": 1e-3,
    "whole_float": 2.0,
    "bool_true": True,
    "bool_false": False,
    "str": "adam",
    "empty_str": "",
    "unicode": "naïve ✓",
    "none": None,
    "list": [1, 2.5, "x", None, True],
    "nested_list": [[1, 2], [3]],
}


def test_nested_config_is_flattened_with_dots(store: Any) -> None:
    config = {"optimizer": {"name": "adam", "lr": 1e-3, "betas": {"b1": 0.9}}, "epochs": 3}
    run = store.create_run("p", config=config)
    assert run.params == {
        "epochs": 3,
        "optimizer.betas.b1": 0.9,
        "optimizer.lr": 1e-3,
        "optimizer.name": "adam",
    }
    flat = store.log_params(run.id, {"data": {"batch_size": 64}})
    assert flat == {"data.batch_size": 64}
    assert store.get_run(run.id).params["data.batch_size"] == 64


def test_typed_params_round_trip(store: Any) -> None:
    run = store.create_run("p", config=TYPED)
    params = store.get_run(run.id).params
    assert params == TYPED
    for key, value in TYPED.items():
        assert type(params[key]) is type(value), key


def test_tuple_param_reads_back_as_list(store: Any) -> None:
    run = store.create_run("p", config={"shape": (28, 28)})
    assert store.get_run(run.id).params == {"shape": [28, 28]}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_float_params_round_trip(store: Any, value: float) -> None:
    run = store.create_run("p", config={"x": value})
    got = store.get_run(run.id).params["x"]
    assert isinstance(got, float)
    if math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value


def test_same_param_value_again_is_a_no_op(store: Any) -> None:
    run = store.create_run("p", config={"lr": 0.1, "opt": {"name": "sgd"}})
    store.log_params(run.id, {"lr": 0.1})
    store.log_params(run.id, {"lr": 0.1, "opt": {"name": "sgd"}})
    assert [h["value"] for h in store.param_history(run.id, "lr")] == [0.1]
    assert [h["value"] for h in store.param_history(run.id, "opt.name")] == ["sgd"]


def test_changed_param_keeps_history(store: Any) -> None:
    run = store.create_run("p", config={"lr": 0.1})
    store.log_params(run.id, {"lr": 0.01})
    store.log_params(run.id, {"lr": "auto"})
    store.log_params(run.id, {"lr": "auto"})
    assert store.get_run(run.id).params["lr"] == "auto"
    history = store.param_history(run.id, "lr")
    assert [h["value"] for h in history] == [0.1, 0.01, "auto"]
    times = [h["logged_at"] for h in history]
    assert times == sorted(times)


def test_type_change_is_a_change(store: Any) -> None:
    run = store.create_run("p", config={"n": 1})
    store.log_params(run.id, {"n": 1.0})
    store.log_params(run.id, {"n": True})
    params = store.get_run(run.id).params
    assert params["n"] is True
    assert [h["value"] for h in store.param_history(run.id, "n")] == [1, 1.0, True]


def test_resume_with_changed_config_keeps_history(store: Any) -> None:
    store.create_run("p", run_id="r1", config={"lr": 0.1})
    store.create_run("p", run_id="r1", config={"lr": 0.2})
    assert store.get_run("r1").params == {"lr": 0.2}
    assert [h["value"] for h in store.param_history("r1", "lr")] == [0.1, 0.2]


def test_param_history_of_unknown_key_is_empty(store: Any) -> None:
    run = store.create_run("p")
    assert store.param_history(run.id, "never") == []


@pytest.mark.parametrize(
    "params",
    [
        {"a\x00": 1},
        {"": 1},
        {"x" * 257: 1},
        {"outer": {"bad\ninner": 1}},
        {1: "int key"},
        ["not", "a", "mapping"],
    ],
)
def test_invalid_params_change_nothing(store: Any, params: Any) -> None:
    run = store.create_run("p", config={"lr": 0.1})
    with pytest.raises(InvalidArgument):
        store.log_params(run.id, params)
    assert store.get_run(run.id) == run
    assert len(store.param_history(run.id, "lr")) == 1


def test_params_of_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.log_params("missing", {"lr": 1})
    with pytest.raises(RunNotFound):
        store.param_history("missing", "lr")


# -- tags ------------------------------------------------------------------------------


def test_tags_set_overwrite_delete(store: Any) -> None:
    run = store.create_run("p", tags={"team": "vision", "stage": "dev"})
    store.set_tags(run.id, {"stage": "baseline", "data/split": "v2"})
    assert store.get_run(run.id).tags == {"data/split": "v2", "stage": "baseline", "team": "vision"}
    store.delete_tag(run.id, "team")
    assert store.get_run(run.id).tags == {"data/split": "v2", "stage": "baseline"}
    store.delete_tag(run.id, "never-set")
    assert store.get_run(run.id).tags == {"data/split": "v2", "stage": "baseline"}


def test_tag_values_become_strings(store: Any) -> None:
    run = store.create_run("p")
    store.set_tags(run.id, {"n": 3, "f": 0.5, "b": True, "empty": ""})
    assert store.get_run(run.id).tags == {"b": "true", "empty": "", "f": "0.5", "n": "3"}


@pytest.mark.parametrize(
    "tags",
    [{"k": None}, {"k": ["a"]}, {"": "v"}, {"a\x00": "v"}, {"k": "v" * 5001}, ["k", "v"]],
)
def test_invalid_tags_change_nothing(store: Any, tags: Any) -> None:
    run = store.create_run("p", tags={"keep": "me"})
    with pytest.raises(InvalidArgument):
        store.set_tags(run.id, {"ok": "fine", **tags} if isinstance(tags, dict) else tags)
    assert store.get_run(run.id) == run


def test_tags_of_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.set_tags("missing", {"a": "b"})
    with pytest.raises(RunNotFound):
        store.delete_tag("missing", "a")


# -- environment and code version ----------------------------------------------------

ENVIRONMENT = {
    "python": "3.11.9",
    "os": {"name": "Linux", "release": "6.8"},
    "cpu": {"count": 16, "model": "EPYC"},
    "gpus": [{"name": "H100", "memory_gb": 80.0}],
    "packages": {"torch": "2.4.0", "numpy": "2.0.1"},
    "command": ["python", "train.py", "--lr=1e-3"],
    "note": "naïve ✓",
}


def test_environment_round_trip(store: Any) -> None:
    run = store.create_run("p")
    assert store.get_environment(run.id) is None
    store.set_environment(run.id, ENVIRONMENT)
    assert store.get_environment(run.id) == ENVIRONMENT
    store.set_environment(run.id, {"python": "3.12"})
    assert store.get_environment(run.id) == {"python": "3.12"}


def test_invalid_environment_changes_nothing(store: Any) -> None:
    run = store.create_run("p")
    store.set_environment(run.id, ENVIRONMENT)
    with pytest.raises(InvalidArgument):
        store.set_environment(run.id, ["python"])
    with pytest.raises(InvalidArgument):
        store.set_environment(run.id, {"value": math.nan})
    assert store.get_environment(run.id) == ENVIRONMENT
    with pytest.raises(RunNotFound):
        store.set_environment("missing", ENVIRONMENT)
    with pytest.raises(RunNotFound):
        store.get_environment("missing")


DIFF_SHA = hashlib.sha256(b"diff --git a/x b/x").hexdigest()


def test_code_version_round_trip(store: Any) -> None:
    run = store.create_run("p")
    assert store.put_blob([b"diff --git a/x b/x"]).sha256 == DIFF_SHA  # uploaded first
    assert store.get_code_version(run.id) is None
    store.set_code_version(
        run.id,
        commit="0123456789abcdef0123456789abcdef01234567",
        branch="feature/speed",
        remote="git@github.com:org/repo.git",
        dirty=True,
        diff_sha256=DIFF_SHA,
        extra={"describe": "v1.2-3-g0123456"},
    )
    assert store.get_code_version(run.id) == {
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "branch": "feature/speed",
        "remote": "git@github.com:org/repo.git",
        "dirty": True,
        "diff_sha256": DIFF_SHA,
        "extra": {"describe": "v1.2-3-g0123456"},
    }
    store.set_code_version(run.id, commit="abc", dirty=False)
    assert store.get_code_version(run.id) == {
        "commit": "abc",
        "branch": None,
        "remote": None,
        "dirty": False,
        "diff_sha256": None,
        "extra": {},
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"commit": "x" * 65},
        {"commit": ""},
        {"branch": "bad\x00branch"},
        {"dirty": "yes"},
        {"diff_sha256": "not-a-hash"},
        {"diff_sha256": DIFF_SHA.upper()},
        {"extra": {"x": math.nan}},
        {"extra": [1]},
        {"extra": ["ab"]},
        {"extra": "text"},
    ],
)
def test_invalid_code_version_changes_nothing(store: Any, fields: dict[str, Any]) -> None:
    run = store.create_run("p")
    store.set_code_version(run.id, commit="abc", dirty=False)
    before = store.get_code_version(run.id)
    with pytest.raises(InvalidArgument):
        store.set_code_version(run.id, **fields)
    assert store.get_code_version(run.id) == before


def test_code_version_of_unknown_run(store: Any) -> None:
    with pytest.raises(RunNotFound):
        store.set_code_version("missing", commit="abc")
    with pytest.raises(RunNotFound):
        store.get_code_version("missing")
