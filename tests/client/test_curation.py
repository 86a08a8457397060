"""Curating a store from the Client and the CLI: projects, and a registry's tags,
descriptions and aliases (protected aliases through a promotion request)."""

from __future__ import annotations

import csv
import datetime
import io
import time
from pathlib import Path

import pytest
import requests

import registrum
from registrum.cli import main
from registrum.errors import (
    AliasNotFound,
    AlreadyExists,
    ApprovalRequired,
    InvalidArgument,
    ModelVersionNotFound,
    ProjectNotFound,
)
from targets import Target


def _registered(target: Target, tmp_path: Path, versions: int = 2) -> None:
    weights = tmp_path / "w.bin"
    for i in range(versions):
        weights.write_bytes(b"w" * (100 + i))
        with registrum.init(project="team", store=target.store) as run:
            run.register_model("clf", path=weights)


def test_projects_from_the_client(target: Target) -> None:
    with registrum.Client(target.store) as client:
        made = client.create_project("vision", description="image models")
        assert (made.name, made.description) == ("vision", "image models")
        client.create_project("audio")
        assert [p.name for p in client.projects()] == ["audio", "vision"]
        assert client.project("vision").description == "image models"
        with pytest.raises(AlreadyExists):
            client.create_project("vision")
        with pytest.raises(ProjectNotFound):
            client.project("nope")


def test_tags_and_descriptions_from_the_client(target: Target, tmp_path: Path) -> None:
    _registered(target, tmp_path)
    with registrum.Client(target.store) as client:
        client.set_model_tags("clf", {"team": "risk", "tier": "gold"})
        assert client.delete_model_tag("clf", "team").tags == {"tier": "gold"}
        assert client.delete_model_tag("clf", "never-set").tags == {"tier": "gold"}
        client.set_version_tags("clf@2", {"checked": "yes", "by": "ana"})
        assert client.delete_version_tag("clf@2", "by").tags == {"checked": "yes"}
        assert client.model_version("clf@1").tags == {}

        assert client.set_description("clf", "fraud classifier").description == "fraud classifier"
        assert client.set_description("clf@1", "the baseline").description == "the baseline"
        assert client.model("clf").description == "fraud classifier"
        assert client.model_version("clf@1").description == "the baseline"
        with pytest.raises(InvalidArgument):
            client.delete_version_tag("clf@1", "")
        with pytest.raises(InvalidArgument):
            client.set_description("clf@x y", "no such reference")

    listed = target.reader.list_audit(action="model_version.tag_deleted")
    assert [e.entity_id for e in listed] == ["clf@2"]


def test_the_registry_from_the_cli(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _registered(target, tmp_path)
    store = ["--store", target.store] if target.store else []

    def cli(*args: str) -> tuple[int, str, str]:
        code = main([*args, *store])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("projects", "create", "vision", "--description", "image models")[0] == 0
    code, out, _ = cli("projects", "list")
    assert code == 0 and "vision" in out and "image models" in out and "team" in out
    code, out, _ = cli("projects", "show", "team")
    assert code == 0 and "models: clf" in out
    code, _, err = cli("projects", "create", "vision")
    assert code == 1 and "already exists" in err

    assert cli("models", "tag", "clf@2", "stage=qa", "owner=ana")[0] == 0
    assert cli("models", "tag", "clf", "tier=gold")[0] == 0
    assert cli("models", "untag", "clf@2", "owner")[0] == 0
    assert cli("models", "describe", "clf@2", "second try")[0] == 0
    assert cli("models", "describe", "clf", "a classifier")[0] == 0
    assert cli("models", "alias", "clf", "champion", "2")[1] == "clf@champion -> version 2\n"
    assert cli("models", "alias", "clf", "old", "1")[0] == 0
    assert cli("models", "unalias", "clf", "old")[0] == 0
    code, out, _ = cli("models", "show", "clf@champion")
    assert code == 0 and "description: second try" in out and "tags: stage=qa" in out

    version = target.reader.get_model_version("clf@2")
    assert (version.tags, version.description, version.aliases) == (
        {"stage": "qa"},
        "second try",
        ["champion"],
    )
    model = target.reader.get_model("clf")
    assert (model.tags, model.description, model.aliases) == (
        {"tier": "gold"},
        "a classifier",
        {"champion": 2},
    )

    code, _, err = cli("models", "tag", "clf@2", "no-equals-sign")
    assert code == 1 and "key=value" in err
    code, _, err = cli("models", "unalias", "clf", "never")
    assert code == 1 and "no alias 'never'" in err


def test_a_protected_alias_from_the_cli_opens_a_request(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _registered(target, tmp_path)
    store = ["--store", target.store] if target.store else []
    with registrum.Client(target.store) as client:
        client.set_alias("clf", "production", 1)
        client.set_policy("clf", protected=["production"])
        with pytest.raises(ApprovalRequired) as opened:
            client.set_alias("clf", "production", 2)
        first = opened.value.request_id
        assert isinstance(first, int) and client.request(first).version == 2

    assert main(["models", "alias", "clf", "production", "2", *store]) == 0
    out = capsys.readouterr().out
    assert "is protected: opened request" in out and "registrum requests show" in out
    assert target.reader.get_model_version("clf@production").version == 1  # it did not move


def test_time_travel_answers_where_an_alias_pointed(target: Target, tmp_path: Path) -> None:
    _registered(target, tmp_path, versions=3)
    with registrum.Client(target.store) as client:
        before_any = time.time()
        time.sleep(0.02)
        client.set_alias("clf", "production", 1)
        time.sleep(0.02)
        on_one = time.time()
        time.sleep(0.02)
        client.set_alias("clf", "production", 2)
        time.sleep(0.02)
        on_two = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(0.02)
        client.delete_alias("clf", "production")

        assert client.model_version("clf@production", at=on_one).version == 1
        iso = on_two.isoformat().replace("+00:00", "Z")
        assert client.model_version("clf@production", at=iso).version == 2
        assert client.model_version("clf@production", at=on_two).version == 2
        with pytest.raises(AliasNotFound, match="had no alias 'production' at"):
            client.model_version("clf@production", at=before_any)
        with pytest.raises(AliasNotFound):  # deleted since: no alias now, none at the end
            client.model_version("clf@production", at=time.time())
        assert client.model_version("clf@latest", at=on_one).version == 3
        assert client.model_version("clf@2", at=on_one).version == 2
        with pytest.raises(ModelVersionNotFound, match="had no versions at"):
            client.model_version("clf", at="2001-01-01")
        with pytest.raises(InvalidArgument, match="ISO 8601"):
            client.model_version("clf@production", at="last tuesday")


def test_rollback_moves_an_alias_back(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _registered(target, tmp_path, versions=3)
    store = ["--store", target.store] if target.store else []
    with registrum.Client(target.store) as client:
        with pytest.raises(InvalidArgument, match="never moved"):
            client.rollback("clf@production")
        client.set_alias("clf", "production", 1)
        with pytest.raises(InvalidArgument, match="its first move set it"):
            client.rollback("clf@production")
        client.set_alias("clf", "production", 3)
        assert client.rollback("clf@production").version == 1
        with pytest.raises(InvalidArgument, match="NAME@ALIAS"):
            client.rollback("clf@2")

        client.set_alias("clf", "production", 2)
        assert main(["models", "rollback", "clf@production", *store]) == 0
        assert capsys.readouterr().out == "clf@production -> version 1 (rolled back)\n"
        assert main(["models", "show", "clf@production", "--at", str(time.time()), *store]) == 0
        assert "clf@1" in capsys.readouterr().out

        client.set_alias("clf", "production", 3)
        client.set_policy("clf", protected=["production"])
        with pytest.raises(ApprovalRequired) as opened:
            client.rollback("clf@production")
        assert opened.value.request_id is not None
        assert client.request(opened.value.request_id).version == 1
        assert client.model_version("clf@production").version == 3


def test_runs_are_renamed_and_described(target: Target) -> None:
    with registrum.init(project="team", name="first-try", store=target.store) as run:
        run_id = run.id
    with registrum.Client(target.store) as client:
        assert client.set_run_name(run_id, "baseline").name == "baseline"
        assert client.set_run_description(run_id, "lr sweep start").description == (
            "lr sweep start"
        )
        got = client.run(run_id)
        assert (got.name, got.description) == ("baseline", "lr sweep start")
        with pytest.raises(InvalidArgument):
            client.set_run_name(run_id, "")
    changes = [(e.before, e.after) for e in target.reader.list_audit(action="run.updated")]
    assert ({"name": "first-try"}, {"name": "baseline"}) in changes
    assert ({"description": None}, {"description": "lr sweep start"}) in changes


def test_the_at_parameter_over_http(tmp_path: Path) -> None:
    from registrum.server import Settings
    from serving import running_server

    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        _registered(Target(url, None, tmp_path), tmp_path, versions=1)
        api = f"{url}/api/v1/models/clf/versions"
        with registrum.Client(url) as client:
            client.set_alias("clf", "prod", 1)
        now = time.time()
        for at in (str(now), "2999-01-01T00:00:00Z", "2999-01-01"):
            answer = requests.get(f"{api}/prod", params={"at": at}, timeout=30)
            assert answer.status_code == 200 and answer.json()["version"] == 1, answer.text
        for at in ("yesterday", "nan", "1e400"):
            answer = requests.get(f"{api}/prod", params={"at": at}, timeout=30)
            assert answer.status_code == 400, (at, answer.text)
        early = requests.get(f"{api}/prod", params={"at": "2001-01-01"}, timeout=30)
        assert early.status_code == 404 and "had no alias" in early.json()["error"]["message"]


def test_runs_move_from_the_client_and_the_cli(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", target.store] if target.store else []
    with registrum.init(project="scratch", store=target.store) as run:
        run.log({"loss": 0.2})
        first = run.id
    with registrum.init(project="scratch", store=target.store) as run:
        second = run.id
    with registrum.Client(target.store) as client:
        client.create_project("paper")
        assert client.move_run(first, "paper").project == "paper"
        assert [r.id for r in client.runs("paper")] == [first]
        assert client.metric_history(first, "loss").values.tolist() == [0.2]
    assert main(["runs", "move", second, "paper", *store]) == 0
    assert capsys.readouterr().out == f"moved run {second} to project paper\n"
    assert main(["runs", "move", second, "nowhere", *store]) == 1
    assert "project 'nowhere' does not exist" in capsys.readouterr().err


def test_moving_a_run_needs_an_editor_of_both_projects(tmp_path: Path) -> None:
    from contextlib import closing

    from registrum.client.http import HttpStore
    from registrum.errors import Forbidden
    from serving import auth_server

    with auth_server(tmp_path, ("ana", "vic")) as (url, admin, tokens):
        for project in ("src", "dest"):
            admin.create_project(project)
        admin.add_member("src", "ana", "editor")
        admin.add_member("dest", "ana", "viewer")
        admin.add_member("src", "vic", "viewer")
        admin.add_member("dest", "vic", "editor")
        run_id = admin.create_run("src").id
        with closing(HttpStore(url, token=tokens["ana"])) as ana, pytest.raises(Forbidden):
            ana.move_run(run_id, "dest")  # a viewer of the target
        with closing(HttpStore(url, token=tokens["vic"])) as vic, pytest.raises(Forbidden):
            vic.move_run(run_id, "dest")  # a viewer of the source
        assert admin.get_run(run_id).project == "src"
        admin.add_member("dest", "ana", "editor")
        with closing(HttpStore(url, token=tokens["ana"])) as ana:
            assert ana.move_run(run_id, "dest").project == "dest"
        answer = requests.post(
            f"{url}/api/v1/runs/{run_id}/move",
            json={"project": 5},
            headers={"authorization": f"Bearer {tokens['ana']}"},
            timeout=30,
        )
        assert answer.status_code == 400, answer.text


def test_delete_and_restore_runs_and_versions_with_their_refusals(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from registrum.errors import Conflict

    store = ["--store", target.store] if target.store else []
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with registrum.init(project="team", store=target.store) as run:
        run.register_model("clf", path=weights)
        producer = run.id
    with registrum.init(project="team", store=target.store) as run:
        scratch = run.id
    with registrum.Client(target.store) as client:
        with pytest.raises(Conflict, match=r"produced registered model versions clf@1"):
            client.delete_run(producer)
        client.delete_run(scratch)
        assert [r.id for r in client.runs("team")] == [producer]
        assert {r.id for r in client.runs("team", include_deleted=True)} == {producer, scratch}
        assert client.restore_run(scratch).id == scratch
        assert len(client.runs("team")) == 2

        client.set_alias("clf", "champion", 1)
        with pytest.raises(Conflict, match=r"clf@1 is what clf@champion points at"):
            client.delete_model_version("clf@1")
        client.set_policy("clf", protected=["production"])
        with pytest.raises(ApprovalRequired):
            client.set_alias("clf", "production", 1)  # opens a request naming version 1
        with pytest.raises(Conflict, match=r"open request \d+ would move clf@production"):
            client.delete_model_version("clf@1", remove_aliases=True)
        [request] = client.requests("clf", state="open")
        client.cancel_request(request.id)
        client.delete_model_version("clf@1", remove_aliases=True)
        assert client.model("clf").aliases == {}
        assert client.restore_model_version("clf@1").version == 1
        client.delete_model_version("clf@1")  # no alias points at it now
        client.delete_run(producer)  # its only version is deleted: the run may go

    assert main(["runs", "restore", producer, *store]) == 0
    assert main(["models", "restore", "clf@1", *store]) == 0
    assert main(["models", "delete", "clf", *store]) == 0
    out = capsys.readouterr().out
    assert "restored run" in out and "restored clf@1" in out and "deleted clf" in out
    assert main(["models", "list", *store]) == 0
    assert "clf" not in capsys.readouterr().out
    assert main(["models", "restore", "clf", *store]) == 0
    assert main(["models", "restore", "clf", *store]) == 1
    assert "is not deleted: nothing to restore" in capsys.readouterr().err
    assert main(["runs", "delete", scratch, *store]) == 0
    assert main(["runs", "list", "team", "--deleted", *store]) == 0
    assert scratch in capsys.readouterr().out
    actions = {e.action for e in target.reader.list_audit(project="team")}
    assert {"run.deleted", "run.restored", "model_version.deleted", "model.restored"} <= actions


def test_deleting_versions_and_models_needs_a_project_admin(tmp_path: Path) -> None:
    from contextlib import closing

    from registrum.client.http import HttpStore
    from registrum.errors import Forbidden
    from serving import auth_server

    with auth_server(tmp_path, ("ana",)) as (url, admin, tokens):
        admin.create_project("p")
        admin.add_member("p", "ana", "editor")
        blob = admin.put_blob(io.BytesIO(b"w"))
        admin.register_model_version(
            "m", project="p", files=[{"path": "w", "sha256": blob.sha256, "size": blob.size}]
        )
        with closing(HttpStore(url, token=tokens["ana"])) as ana:
            with pytest.raises(Forbidden):
                ana.delete_model_version("m@1")
            with pytest.raises(Forbidden):
                ana.delete_model("m")
            run = ana.create_run("p")
            ana.delete_run(run.id)  # an editor deletes runs
        admin.delete_model_version("m@1")
        with closing(HttpStore(url, token=tokens["ana"])) as ana, pytest.raises(Forbidden):
            ana.restore_model_version("m@1")


def test_the_command_says_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"registrum {registrum.__version__}\n"


def test_projects_and_artifacts_are_deleted_and_restored(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from registrum.errors import Conflict

    store = ["--store", target.store] if target.store else []

    def cli(*args: str) -> tuple[int, str, str]:
        code = main([*args, *store])
        out, err = capsys.readouterr()
        return code, out, err

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with registrum.init(project="vision", store=target.store) as run:
        run.log_artifact(weights, name="weights", type="model-weights")
        run_id = run.id
    with registrum.Client(target.store) as client:
        [made] = client.artifacts("vision", name="weights")
        client.delete_artifact("vision", "weights", made.version)
        assert client.artifacts("vision") == []
        [listed] = client.artifacts("vision", include_deleted=True)
        assert listed.deleted_at is not None
        assert client.restore_artifact("vision", "weights", made.version).deleted_at is None

        client.delete_project("vision")
        assert "vision" not in [p.name for p in client.projects()]
        assert client.projects(include_deleted=True)[0].deleted_at is not None
        with pytest.raises(ProjectNotFound, match="registrum projects restore vision"):
            client.project("vision")
        with pytest.raises(Conflict, match="restore the project"):
            client.restore_run(run_id)
        assert client.restore_project("vision").name == "vision"
        assert [r.id for r in client.runs("vision")] == [run_id]

    assert cli("artifacts", "list", "vision")[1].count("weights:1") == 1
    code, out, _ = cli("artifacts", "delete", "vision", "weights:1")
    assert code == 0 and "registrum artifacts restore vision weights:1" in out
    assert "weights:1" not in cli("artifacts", "list", "vision")[1]
    table = cli("artifacts", "list", "vision", "--deleted")[1]
    assert table.splitlines()[0].split()[-1] == "deleted" and "weights:1" in table
    [row] = csv.DictReader(
        io.StringIO(cli("artifacts", "list", "vision", "--deleted", "--format", "csv")[1])
    )
    assert row["artifact"] == "weights:1" and row["deleted"].endswith("Z")
    assert cli("artifacts", "restore", "vision", "weights:1")[1].startswith("restored weights:1")
    code, _, err = cli("artifacts", "delete", "vision", "weights")
    assert code == 1 and "write NAME:VERSION" in err

    code, out, _ = cli("projects", "delete", "vision")
    assert code == 0 and "registrum projects restore vision" in out
    assert "vision" not in cli("projects", "list")[1]
    [row] = csv.DictReader(io.StringIO(cli("projects", "list", "--deleted", "--format", "csv")[1]))
    assert row["name"] == "vision" and row["deleted"].endswith("Z")
    assert cli("projects", "restore", "vision")[0] == 0
    assert "vision" in cli("projects", "list")[1]
    actions = {e.action for e in target.reader.list_audit(project="vision")}
    expected = {"artifact.deleted", "artifact.restored", "project.deleted", "project.restored"}
    assert expected <= actions


def test_deleted_models_and_versions_are_listed_when_asked(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", target.store] if target.store else []
    _registered(target, tmp_path, versions=2)
    with registrum.Client(target.store) as client:
        client.delete_model_version("clf@1")
        assert [v.version for v in client.model_versions("clf")] == [2]
        every = client.model_versions("clf", include_deleted=True)
        assert [(v.version, v.deleted_at is not None) for v in every] == [(2, False), (1, True)]
        client.delete_model("clf")
        assert client.models() == []
        [gone] = client.models(include_deleted=True)
        assert gone.name == "clf" and gone.deleted_at is not None
    assert main(["models", "list", "--deleted", "--format", "csv", *store]) == 0
    [row] = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["name"] == "clf" and row["deleted"].endswith("Z")
    assert main(["models", "restore", "clf", *store]) == 0
    assert main(["models", "show", "clf", "--deleted", *store]) == 0
    out = capsys.readouterr().out
    assert "clf@1" in out and "(deleted " in out and "clf@2" in out
