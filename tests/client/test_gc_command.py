"""`registrum gc` and `Client.collect_garbage`, on the embedded store and over HTTP (where
only a server admin may collect)."""

from __future__ import annotations

import io
from contextlib import closing
from pathlib import Path

import pytest

import registrum
from registrum.cli import main
from registrum.errors import Forbidden, InvalidArgument, RunNotFound
from targets import Target


def test_gc_from_the_command_and_the_client(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", target.store] if target.store else []
    with registrum.init(project="team", store=target.store) as run:
        run.log({"loss": 0.5})
        doomed = run.id
    with registrum.init(project="team", store=target.store) as run:
        kept = run.id
    with registrum.Client(target.store) as client:
        client.delete_run(doomed)
        assert client.collect_garbage().runs == 0  # deleted seconds ago: 7 days of grace

    assert main(["gc", "--dry-run", "--older-than", "0s", *store]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 runs" in out and "team: 1 runs" in out and "dry run" in out
    assert main(["gc", "--older-than", "0s", *store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 1 runs, 0 artifacts") and "reclaimed" in out
    with registrum.Client(target.store) as client:
        with pytest.raises(RunNotFound):
            client.run(doomed)
        assert client.run(kept).id == kept
        with pytest.raises(InvalidArgument, match="not a duration"):
            client.collect_garbage("a week")
    assert main(["gc", "--older-than", "soon", *store]) == 1
    assert "not a duration" in capsys.readouterr().err
    events = sorted(target.reader.list_audit(action="gc.collected"), key=lambda e: e.id)
    assert [e.after["runs"] for e in events] == [0, 1]


def test_only_a_server_admin_collects(tmp_path: Path) -> None:
    from registrum.client.http import HttpStore
    from serving import auth_server

    with auth_server(tmp_path, ("ana",)) as (url, admin, tokens):
        admin.create_project("p")
        admin.add_member("p", "ana", "admin")
        admin.put_blob(io.BytesIO(b"x"))
        with closing(HttpStore(url, token=tokens["ana"])) as ana, pytest.raises(Forbidden):
            ana.collect_garbage(0, dry_run=True)
        assert admin.collect_garbage(0, dry_run=True).dry_run


def test_retention_from_the_command_and_the_client(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", target.store] if target.store else []
    with registrum.init(project="vision", store=target.store) as run:
        for step in range(4):
            path = tmp_path / f"epoch-{step}.ckpt"
            path.write_bytes(f"weights {step}".encode())
            run.log_checkpoint(path, step=step, best=step == 1, keep_earlier_best=True)
        run_id = run.id

    assert main(["retention", "show", "vision", *store]) == 0
    assert "every one kept" in capsys.readouterr().out
    assert main(["retention", "set", "vision", "--keep-checkpoints", "1", *store]) == 0
    assert "the newest 1 and the best" in capsys.readouterr().out
    assert main(["retention", "set", "vision", "--artifact-ttl", "30d", *store]) == 0
    out = capsys.readouterr().out
    assert "the newest 1 and the best" in out and "30d after they were made" in out
    assert main(["retention", "apply", "vision", *store]) == 0
    assert "deleted 2 checkpoint(s)" in capsys.readouterr().out
    with registrum.Client(target.store) as client:
        kept = client.artifacts("vision", run_id=run_id)
        assert sorted(a.metadata["step"] for a in kept) == [1, 3]
        assert client.apply_retention("vision") == {"checkpoints": 0, "artifacts": 0}
        cleared = client.set_retention("vision")
        assert (cleared.keep_checkpoints, cleared.artifact_ttl) == (None, None)
    with pytest.raises(SystemExit) as refused:
        main(["retention", "set", "vision", "--keep-checkpoints", "some", *store])
    assert refused.value.code == 2 and "expected a number" in capsys.readouterr().err


def test_the_server_collects_on_its_schedule(tmp_path: Path) -> None:
    """`registrum server --gc-interval`: the leader collects by itself; off by default."""
    from polling import wait_for
    from registrum.client.http import HttpStore
    from registrum.server import Settings
    from registrum.server.jobs import jobs
    from registrum.store import open_store
    from serving import running_server

    url = f"sqlite:///{tmp_path}/srv.db"
    with closing(open_store(url, blobs=tmp_path / "blobs")) as store:
        default = Settings(store_url=url)
        assert "collecting garbage" not in [j.name for j in jobs(store, default)]
        scheduled = Settings(store_url=url, gc_interval=86400, gc_older_than=3600)
        [job] = [j for j in jobs(store, scheduled) if j.name == "collecting garbage"]
        assert job.every == 86400 and job.leader_only
    settings = Settings(store_url=url, blobs=tmp_path / "blobs", gc_interval=0.2, gc_older_than=0)
    with running_server(settings) as base, closing(HttpStore(base)) as client:
        run = client.create_run("p")
        client.delete_run(run.id)

        def collected() -> bool:
            try:
                client.get_run(run.id)
            except RunNotFound:
                return True
            return False

        wait_for(collected, "the scheduled collection", timeout=30)
        assert any(e.after["runs"] == 1 for e in client.list_audit(action="gc.collected"))
    with pytest.raises(ValueError, match="gc_interval"):
        Settings(gc_interval=-1)
