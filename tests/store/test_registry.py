"""Contract tests of the model registry: models, consecutive versions, snapshots, aliases."""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import pytest

from registrum.entities import ModelVersion, RegisteredModel
from registrum.errors import (
    AliasMoved,
    AliasNotFound,
    AlreadyExists,
    ArtifactNotFound,
    BlobNotFound,
    InvalidArgument,
    InvalidName,
    ModelNotFound,
    ModelVersionNotFound,
    ProjectNotFound,
    RunNotFound,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Registry:
    """Makes what registrations need: uploaded files, artifacts, trained runs."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._n = 0

    def files(self, data: bytes | None = None) -> list[dict[str, Any]]:
        if data is None:
            self._n += 1
            data = f"weights {self._n}".encode()
        info = self.store.put_blob(io.BytesIO(data), sha256=sha(data))
        return [{"path": "model.bin", "sha256": info.sha256, "size": info.size}]

    def artifact(self, project: str = "p") -> int:
        return int(
            self.store.create_artifact(project, "weights", type="model", files=self.files()).id
        )

    def register(self, name: str = "m", **kwargs: Any) -> ModelVersion:
        if "files" not in kwargs and "artifact_id" not in kwargs:
            kwargs["files"] = self.files()
        if "project" not in kwargs and "run_id" not in kwargs:
            kwargs["project"] = "p"
        mv: ModelVersion = self.store.register_model_version(name, **kwargs)
        return mv

    def trained_run(self) -> str:
        run = self.store.create_run("p", config={"lr": 0.1, "optimizer": {"name": "adam"}})
        self.store.log_metrics(
            run.id, seq=0, keys=["loss", "loss", "acc"], steps=[0, 1, 1], values=[0.5, 0.2, 0.9]
        )
        return str(run.id)


@pytest.fixture
def reg(store: Any) -> Registry:
    return Registry(store)


# -- models ---------------------------------------------------------------------------


def test_create_model(store: Any) -> None:
    model = store.create_model("mnist-cnn", project="p", description="digits", tags={"team": "v"})
    assert isinstance(model, RegisteredModel)
    assert (model.name, model.project, model.description) == ("mnist-cnn", "p", "digits")
    assert (model.latest_version, model.aliases, model.tags) == (None, {}, {"team": "v"})
    assert store.get_model("mnist-cnn") == model
    assert [p.name for p in store.list_projects()] == ["p"]


def test_model_twice_is_already_exists(store: Any) -> None:
    store.create_model("m", project="p", description="first")
    with pytest.raises(AlreadyExists):
        store.create_model("m", project="q", description="second")
    assert store.get_model("m").description == "first"
    assert [p.name for p in store.list_projects()] == ["p"]


def test_unknown_model(store: Any) -> None:
    with pytest.raises(ModelNotFound):
        store.get_model("nope")
    with pytest.raises(ModelNotFound):
        store.list_model_versions("nope")
    with pytest.raises(ModelNotFound):
        store.update_model("nope", description="x")
    with pytest.raises(ModelNotFound):
        store.get_model_version("nope@1")


def test_list_models(store: Any) -> None:
    store.create_model("b", project="p")
    store.create_model("a", project="p")
    store.create_model("c", project="q")
    assert [m.name for m in store.list_models()] == ["a", "b", "c"]
    assert [m.name for m in store.list_models(project="p")] == ["a", "b"]
    assert [m.name for m in store.list_models(project="q")] == ["c"]
    with pytest.raises(ProjectNotFound):
        store.list_models(project="nope")


def test_update_model(store: Any) -> None:
    store.create_model("m", project="p", description="old", tags={"a": "1", "b": "2"})
    model = store.update_model("m", description="new", tags={"b": "3", "c": "4"})
    assert model.description == "new"
    assert model.tags == {"a": "1", "b": "3", "c": "4"}
    unchanged = store.update_model("m")
    assert (unchanged.description, unchanged.tags) == ("new", {"a": "1", "b": "3", "c": "4"})
    assert store.get_model("m") == unchanged


@pytest.mark.parametrize("bad", ["", "a/b", "a@b", "x" * 257, "bad\x00", "\t", 7])
def test_invalid_model_name_creates_nothing(store: Any, reg: Registry, bad: Any) -> None:
    files = reg.files()
    with pytest.raises(InvalidName):
        store.create_model(bad, project="p")
    with pytest.raises(InvalidName):
        store.register_model_version(bad, project="p", files=files)
    assert store.list_models() == []
    assert store.list_projects() == []


def test_invalid_model_fields_create_nothing(store: Any) -> None:
    with pytest.raises(InvalidName):
        store.create_model("m", project="a/b")
    with pytest.raises(InvalidArgument):
        store.create_model("m", project="p", description=3)
    with pytest.raises(InvalidArgument):
        store.create_model("m", project="p", tags={"k": [1]})
    assert store.list_models() == []
    assert store.list_projects() == []


def test_invalid_update_changes_nothing(store: Any) -> None:
    before = store.create_model("m", project="p", description="keep", tags={"a": "1"})
    with pytest.raises(InvalidArgument):
        store.update_model("m", description="new", tags={"": "x"})
    with pytest.raises(InvalidArgument):
        store.update_model("m", description=["x"])
    assert store.get_model("m") == before


# -- versions ---------------------------------------------------------------------------


def test_versions_are_consecutive_from_one(store: Any, reg: Registry) -> None:
    versions = [reg.register("m").version for _ in range(5)]
    assert versions == [1, 2, 3, 4, 5]
    assert reg.register("other").version == 1
    assert store.get_model("m").latest_version == 5
    assert [v.version for v in store.list_model_versions("m")] == [5, 4, 3, 2, 1]


def test_register_creates_the_model(store: Any, reg: Registry) -> None:
    mv = reg.register("fresh", project="p", flavor="sklearn", description="first")
    assert isinstance(mv, ModelVersion)
    assert (mv.model, mv.version, mv.project, mv.flavor, mv.description) == (
        "fresh",
        1,
        "p",
        "sklearn",
        "first",
    )
    assert mv.ref == "fresh@1"
    model = store.get_model("fresh")
    assert (model.project, model.latest_version) == ("p", 1)


def test_register_from_files(store: Any, reg: Registry) -> None:
    files = reg.files(b"the weights")
    mv = store.register_model_version(
        "m",
        project="p",
        files=files,
        flavor="lightning",
        signature={"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 784]}]},
        tags={"framework": "torch"},
    )
    assert mv.artifact.files[0].sha256 == sha(b"the weights")
    assert (mv.artifact.type, mv.artifact.size) == ("model", len(b"the weights"))
    assert mv.signature == {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 784]}]}
    assert mv.tags == {"framework": "torch"}
    assert store.get_model_version("m@1") == mv


def test_register_from_an_artifact(store: Any, reg: Registry) -> None:
    artifact_id = reg.artifact()
    mv = reg.register("m", artifact_id=artifact_id)
    assert mv.artifact.id == artifact_id
    assert store.get_artifact_by_id(artifact_id) == mv.artifact
    again = reg.register("m", artifact_id=artifact_id)
    assert (again.version, again.artifact.id) == (2, artifact_id)


def test_same_files_twice_are_two_versions(store: Any, reg: Registry) -> None:
    files = reg.files(b"unchanged")
    first = reg.register("m", files=files)
    second = reg.register("m", files=files)
    assert (first.version, second.version) == (1, 2)
    assert first.artifact.id == second.artifact.id


def test_project_taken_from_the_run(store: Any, reg: Registry) -> None:
    run = store.create_run("from-run")
    mv = reg.register("m", run_id=run.id)
    assert (mv.project, mv.run_id) == ("from-run", run.id)
    assert store.get_model("m").project == "from-run"


def test_metrics_and_params_snapshot_from_the_run(store: Any, reg: Registry) -> None:
    run_id = reg.trained_run()
    mv = reg.register("m", run_id=run_id)
    assert mv.metrics == {"acc": 0.9, "loss": 0.2}
    assert mv.params == {"lr": 0.1, "optimizer.name": "adam"}
    # A snapshot: what the run logs later does not change the version.
    store.log_metrics(run_id, seq=1, keys=["loss"], steps=[2], values=[0.1])
    store.log_params(run_id, {"lr": 0.5})
    assert store.get_model_version("m@1") == mv


def test_explicit_metrics_and_params_win(store: Any, reg: Registry) -> None:
    run_id = reg.trained_run()
    mv = reg.register("m", run_id=run_id, metrics={"loss": 0.15, "val_acc": 0.98}, params={"lr": 1})
    assert mv.metrics["loss"] == 0.15
    assert mv.metrics["val_acc"] == 0.98
    assert mv.params["lr"] == 1
    assert store.get_model_version("m@1") == mv


def test_metrics_without_a_run(store: Any, reg: Registry) -> None:
    mv = reg.register("m", metrics={"acc": 1, "loss": 0.5}, params={"depth": 3})
    assert (mv.run_id, mv.metrics, mv.params) == (None, {"acc": 1.0, "loss": 0.5}, {"depth": 3})
    assert reg.register("m").metrics == {}


def test_non_finite_metrics(store: Any, reg: Registry) -> None:
    mv = reg.register("m", metrics={"inf": math.inf, "ninf": -math.inf, "nan": math.nan})
    got = store.get_model_version("m@1").metrics
    assert (got["inf"], got["ninf"]) == (math.inf, -math.inf)
    assert math.isnan(got["nan"]) and math.isnan(mv.metrics["nan"])
    run = store.create_run("p")
    store.log_metrics(run.id, seq=0, keys=["loss"], steps=[0], values=[math.nan])
    snap = reg.register("m", run_id=run.id)
    assert math.isnan(snap.metrics["loss"])


def test_update_model_version(store: Any, reg: Registry) -> None:
    reg.register("m", tags={"a": "1"})
    reg.register("m")
    mv = store.update_model_version("m@1", description="baseline", tags={"b": "2"})
    assert (mv.version, mv.description, mv.tags) == (1, "baseline", {"a": "1", "b": "2"})
    assert store.get_model_version("m@1") == mv
    assert store.update_model_version("m", description="latest").version == 2


# -- resolving references ------------------------------------------------------------------


def test_resolve_references(store: Any, reg: Registry) -> None:
    v1 = reg.register("m")
    v2 = reg.register("m", aliases=["champion"])
    v3 = reg.register("m")
    assert store.get_model_version("m") == v3
    assert store.get_model_version("m@latest") == v3
    assert store.get_model_version("m@1") == v1
    assert store.get_model_version("m@3") == v3
    assert store.get_model_version("m@champion").version == v2.version


def test_resolve_errors(store: Any, reg: Registry) -> None:
    store.create_model("empty", project="p")
    with pytest.raises(ModelVersionNotFound):
        store.get_model_version("empty")
    with pytest.raises(ModelVersionNotFound):
        store.get_model_version("empty@latest")
    reg.register("m")
    with pytest.raises(ModelVersionNotFound):
        store.get_model_version("m@2")
    with pytest.raises(AliasNotFound):
        store.get_model_version("m@champion")
    with pytest.raises(ModelNotFound):
        store.get_model_version("missing@1")
    for bad in ("m@", "@1", "m@1@2", "m@0", "m@-1", "m@has space", ""):
        with pytest.raises(InvalidArgument):
            store.get_model_version(bad)


# -- aliases ---------------------------------------------------------------------------


def test_aliases_set_on_register(store: Any, reg: Registry) -> None:
    v1 = reg.register("m", aliases=["candidate", "staging"])
    assert v1.aliases == ["candidate", "staging"]
    v2 = reg.register("m", aliases=["candidate"])
    assert v2.aliases == ["candidate"]
    assert store.get_model_version("m@1").aliases == ["staging"]
    assert store.get_model("m").aliases == {"candidate": 2, "staging": 1}


def test_set_alias_moves_it(store: Any, reg: Registry) -> None:
    reg.register("m")
    reg.register("m")
    assert store.set_alias("m", "champion", 1).version == 1
    moved = store.set_alias("m", "champion", 2)
    assert (moved.version, moved.aliases) == (2, ["champion"])
    assert store.get_model_version("m@champion").version == 2
    assert store.get_model_version("m@1").aliases == []
    assert store.set_alias("m", "champion", 2).version == 2


def test_compare_and_set_wins_when_it_matches(store: Any, reg: Registry) -> None:
    for _ in range(3):
        reg.register("m")
    store.set_alias("m", "champion", 1)
    assert store.set_alias("m", "champion", 2, expected_version=1).version == 2
    assert store.set_alias("m", "champion", 3, expected_version=2).version == 3
    assert store.get_model("m").aliases == {"champion": 3}


def test_compare_and_set_loses_when_moved(store: Any, reg: Registry) -> None:
    for _ in range(3):
        reg.register("m")
    store.set_alias("m", "champion", 2)
    with pytest.raises(AliasMoved):
        store.set_alias("m", "champion", 3, expected_version=1)
    assert store.get_model("m").aliases == {"champion": 2}
    with pytest.raises(AliasMoved):
        store.set_alias("m", "never-set", 3, expected_version=1)
    with pytest.raises(AliasMoved):
        store.set_alias("m", "champion", 3, expected_version=9)
    assert store.get_model("m").aliases == {"champion": 2}


def test_compare_and_set_with_none_means_only_if_absent(store: Any, reg: Registry) -> None:
    reg.register("m")
    reg.register("m")
    assert store.set_alias("m", "champion", 1, expected_version=None).version == 1
    with pytest.raises(AliasMoved):
        store.set_alias("m", "champion", 2, expected_version=None)
    with pytest.raises(AliasMoved):
        store.set_alias("m", "champion", 1, expected_version=None)
    assert store.get_model("m").aliases == {"champion": 1}


def test_alias_errors_change_nothing(store: Any, reg: Registry) -> None:
    reg.register("m", aliases=["champion"])
    before = store.get_model("m")
    with pytest.raises(ModelVersionNotFound):
        store.set_alias("m", "champion", 5)
    with pytest.raises(ModelNotFound):
        store.set_alias("missing", "champion", 1)
    for bad in ("", "1abc", "9", "has space", "a/b", "a@b", "x" * 129, "-lead"):
        with pytest.raises(InvalidName):
            store.set_alias("m", bad, 1)
    for bad_version in (0, -1, "1", 1.0):
        with pytest.raises(InvalidArgument):
            store.set_alias("m", "champion", bad_version)
    with pytest.raises(InvalidArgument):
        store.set_alias("m", "champion", 1, expected_version="1")
    assert store.get_model("m") == before


def test_latest_is_not_an_alias(store: Any, reg: Registry) -> None:
    reg.register("m")
    reg.register("m")
    with pytest.raises(InvalidName):
        store.set_alias("m", "latest", 1)
    with pytest.raises(InvalidName):
        reg.register("m", aliases=["latest"])
    assert store.get_model_version("m@latest").version == 2
    assert store.get_model("m").aliases == {}


def test_delete_alias(store: Any, reg: Registry) -> None:
    reg.register("m", aliases=["champion", "staging"])
    store.delete_alias("m", "champion")
    assert store.get_model("m").aliases == {"staging": 1}
    with pytest.raises(AliasNotFound):
        store.get_model_version("m@champion")
    with pytest.raises(AliasNotFound):
        store.delete_alias("m", "champion")
    with pytest.raises(ModelNotFound):
        store.delete_alias("missing", "staging")


def test_delete_alias_compare_and_set(store: Any, reg: Registry) -> None:
    reg.register("m", aliases=["champion"])
    reg.register("m")
    with pytest.raises(AliasMoved):
        store.delete_alias("m", "champion", expected_version=2)
    with pytest.raises(AliasMoved):
        store.delete_alias("m", "champion", expected_version=7)
    assert store.get_model("m").aliases == {"champion": 1}
    store.delete_alias("m", "champion", expected_version=1)
    assert store.get_model("m").aliases == {}


# -- rejected registrations change nothing --------------------------------------------------


def test_failed_registration_uses_no_number(store: Any, reg: Registry) -> None:
    reg.register("m")
    with pytest.raises(RunNotFound):
        reg.register("m", run_id="missing")
    with pytest.raises(ArtifactNotFound):
        reg.register("m", artifact_id=10_000)
    assert reg.register("m").version == 2
    assert [v.version for v in store.list_model_versions("m")] == [2, 1]


def snapshot(store: Any) -> tuple[Any, ...]:
    models = store.list_models()
    versions = {m.name: store.list_model_versions(m.name) for m in models}
    projects = store.list_projects()
    artifacts = {p.name: store.list_artifacts(p.name) for p in projects}
    return (models, versions, projects, artifacts)


@pytest.mark.parametrize(
    "case",
    [
        "unknown-run",
        "unknown-run-new-model",
        "missing-blob",
        "bad-path",
        "bad-alias",
        "bad-metric",
        "bad-metric-name",
        "bad-params",
        "bad-signature",
        "non-json-signature",
        "bad-tags",
        "bad-flavor",
        "both-sources",
        "no-source",
        "unknown-artifact",
        "new-model-without-project",
    ],
)
def test_rejected_registration_changes_nothing(store: Any, reg: Registry, case: str) -> None:
    reg.register("m", aliases=["champion"])
    files = reg.files(b"new weights")
    before = snapshot(store)
    cases: dict[str, tuple[type[Exception], str, dict[str, Any]]] = {
        "unknown-run": (RunNotFound, "m", {"run_id": "missing", "files": files}),
        "unknown-run-new-model": (
            RunNotFound,
            "new",
            {"project": "fresh", "run_id": "missing", "files": files},
        ),
        "missing-blob": (
            BlobNotFound,
            "new",
            {"project": "fresh", "files": [{"path": "w", "sha256": sha(b"absent"), "size": 6}]},
        ),
        "bad-path": (InvalidArgument, "m", {"files": [{**files[0], "path": "../w"}]}),
        "bad-alias": (InvalidName, "m", {"files": files, "aliases": ["champion", "1x"]}),
        "bad-metric": (InvalidArgument, "m", {"files": files, "metrics": {"acc": "high"}}),
        "bad-metric-name": (InvalidArgument, "m", {"files": files, "metrics": {"": 1.0}}),
        "bad-params": (InvalidArgument, "m", {"files": files, "params": [1]}),
        "bad-signature": (InvalidArgument, "m", {"files": files, "signature": "x"}),
        "non-json-signature": (
            InvalidArgument,
            "m",
            {"files": files, "signature": {"inputs": [math.nan]}},
        ),
        "bad-tags": (InvalidArgument, "m", {"files": files, "tags": {"k": None}}),
        "bad-flavor": (InvalidName, "m", {"files": files, "flavor": "a/b"}),
        "both-sources": (InvalidArgument, "m", {"files": files, "artifact_id": 1}),
        "no-source": (InvalidArgument, "m", {}),
        "unknown-artifact": (ArtifactNotFound, "m", {"artifact_id": 10_000}),
        "new-model-without-project": (InvalidArgument, "new", {"files": files}),
    }
    error, name, kwargs = cases[case]
    with pytest.raises(error):
        store.register_model_version(name, **kwargs)
    assert snapshot(store) == before
    assert reg.register("m").version == 2
