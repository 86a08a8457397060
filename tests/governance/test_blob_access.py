"""Blobs by hash: knowing a sha256 reads nothing. Over a real server with auth, on SQLite and
PostgreSQL: the attack (referencing another project's hash, then downloading it) gets 404 or
403; uploading the bytes proves possession; a removed member loses access at once; and the
client's own flows (artifacts, checkpoints, registration, code diffs, sync, use_model) work
with auth on, also for content another project stored first."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import registrum
from registrum.client.http import HttpStore
from registrum.errors import BlobNotFound, Forbidden
from registrum.server import Settings
from serving import running_server
from targets import sync

ADMIN = "rgm_blob-admin-token-0123456789abcdef"
SECRET = b"the victim's model weights"
SECRET_SHA = hashlib.sha256(SECRET).hexdigest()
NEVER = hashlib.sha256(b"stored by nobody").hexdigest()


@dataclass
class Server:
    url: str
    tokens: dict[str, str]

    def client(self, user: str) -> HttpStore:
        return HttpStore(self.url, token=self.tokens[user])

    def call(self, user: str, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"authorization": f"Bearer {self.tokens[user]}"}
        return requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server with auth over SQLite or PostgreSQL; `victim` is editor of project `vault`,
    which holds SECRET as an artifact file and as a run's code diff; `attacker` and `viewer`
    (made a viewer of `vault`) are other users."""
    settings = Settings(
        store_url=database_url,
        blobs=tmp_path / "blobs",
        auth=True,
        admin_token=ADMIN,
        webhook_senders=0,
    )
    with running_server(settings) as url, closing(HttpStore(url, token=ADMIN)) as admin:
        tokens = {"admin": ADMIN}
        for name in ("victim", "attacker", "viewer"):
            admin.create_user(name)
            made = admin.create_token(user=name)
            assert made.token is not None
            tokens[name] = made.token
        admin.create_project("vault")
        admin.add_member("vault", "victim", "editor")
        admin.add_member("vault", "viewer", "viewer")
        s = Server(url, tokens)
        with closing(s.client("victim")) as victim:
            run = victim.create_run("vault", name="secret-run")
            info = victim.put_blob(io.BytesIO(SECRET))
            victim.set_code_version(run.id, commit="abc", diff_sha256=info.sha256)
            manifest = [{"path": "w.bin", "sha256": info.sha256, "size": info.size}]
            victim.register_model_version("secret-model", project="vault", files=manifest)
        s.tokens["victim_run"] = run.id
        yield s


def test_knowing_a_hash_reads_nothing(server: Server) -> None:
    victim_run = server.tokens["victim_run"]
    with closing(server.client("attacker")) as attacker:
        run = attacker.create_run("mine")
        manifest = [{"path": "w.bin", "sha256": SECRET_SHA, "size": len(SECRET)}]
        # The attack: the victim's hash as this run's code diff ...
        r = server.call("attacker", "PUT", f"/runs/{run.id}/code", json={"diff_sha256": SECRET_SHA})
        assert r.status_code == 404 and r.json()["error"]["code"] == "blob_not_found"
        # ... in an artifact manifest, in a registration ...
        with pytest.raises(BlobNotFound, match="was not uploaded"):
            attacker.create_artifact("mine", "copy", type="data", files=manifest)
        with pytest.raises(BlobNotFound, match="was not uploaded"):
            attacker.register_model_version("stolen", project="mine", files=manifest)
        # ... or comparing code with the victim's run.
        r = server.call("attacker", "GET", "/code/compare", params={"a": run.id, "b": victim_run})
        assert r.status_code == 403
        # Then the bytes: answered exactly as for a blob nobody stored.
        for sha in (SECRET_SHA, NEVER):
            assert server.call("attacker", "HEAD", f"/blobs/{sha}").status_code == 404
            got = server.call("attacker", "GET", f"/blobs/{sha}")
            assert got.status_code == 404
            assert got.json() == {
                "error": {
                    "code": "blob_not_found",
                    "message": f"blob {sha} is not stored",
                    "sha256": sha,
                }
            }
        # Not an oracle either: "missing" for the victim's blob as for one never stored.
        assert attacker.missing_blobs([SECRET_SHA, NEVER]) == [SECRET_SHA, NEVER]
        assert not attacker.blob_exists(SECRET_SHA)
        assert attacker.get_code_version(run.id) is None
        assert [a.name for a in attacker.list_artifacts("mine")] == []


def test_uploading_the_bytes_proves_possession(server: Server) -> None:
    with closing(server.client("attacker")) as other:
        # Wrong bytes under the victim's hash: refused, and no access gained.
        r = server.call("attacker", "PUT", f"/blobs/{SECRET_SHA}", data=b"guess")
        assert r.status_code == 400 and r.json()["error"]["code"] == "hash_mismatch"
        assert server.call("attacker", "HEAD", f"/blobs/{SECRET_SHA}").status_code == 404
        # Whoever holds the same bytes sends them, and is answered as for a new blob.
        r = server.call("attacker", "PUT", f"/blobs/{SECRET_SHA}", data=SECRET)
        assert r.status_code == 201 and r.json() == {
            "sha256": SECRET_SHA,
            "size": len(SECRET),
            "created": True,
        }
        assert other.missing_blobs([SECRET_SHA]) == []
        run = other.create_run("own")
        other.set_code_version(run.id, diff_sha256=SECRET_SHA)
        manifest = [{"path": "w.bin", "sha256": SECRET_SHA, "size": len(SECRET)}]
        assert other.create_artifact("own", "same", type="data", files=manifest).version == 1
        assert b"".join(other.read_blob(SECRET_SHA)) == SECRET
        # The victim's project stays out of reach.
        with pytest.raises(Forbidden):
            other.get_code_version(server.tokens["victim_run"])


def test_a_removed_member_loses_the_blobs_at_once(server: Server) -> None:
    with (
        closing(server.client("viewer")) as viewer,
        closing(HttpStore(server.url, token=ADMIN)) as admin,
    ):
        assert b"".join(viewer.read_blob(SECRET_SHA)) == SECRET
        assert viewer.missing_blobs([SECRET_SHA]) == []
        admin.remove_member("vault", "viewer")
        assert server.call("viewer", "HEAD", f"/blobs/{SECRET_SHA}").status_code == 404
        assert server.call("viewer", "GET", f"/blobs/{SECRET_SHA}").status_code == 404
        assert viewer.missing_blobs([SECRET_SHA]) == [SECRET_SHA]
        admin.add_member("vault", "viewer", "viewer")
        assert b"".join(viewer.read_blob(SECRET_SHA)) == SECRET


def test_a_reader_may_reference_what_it_can_read(server: Server) -> None:
    """A viewer of `vault` could download the bytes and upload them again, so it may name
    them in a project of its own without sending them."""
    with closing(server.client("viewer")) as viewer:
        manifest = [{"path": "w.bin", "sha256": SECRET_SHA, "size": len(SECRET)}]
        version = viewer.register_model_version("copy", project="own", files=manifest)
        assert version.artifact.files[0].sha256 == SECRET_SHA


def test_without_auth_every_blob_stays_usable(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url, closing(HttpStore(url)) as client:
        info = client.put_blob(io.BytesIO(SECRET))
        run = client.create_run("b")
        client.set_code_version(run.id, diff_sha256=info.sha256)
        assert client.missing_blobs([info.sha256]) == []
        assert b"".join(client.read_blob(info.sha256)) == SECRET


SCRIPT = """
import sys
from pathlib import Path
import registrum

folder, project, text = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(folder / "out").mkdir(exist_ok=True)
(folder / "out" / "pred.txt").write_text(text)
(folder / "model.bin").write_text(text)
(folder / "epoch.ckpt").write_text(text + " checkpoint")
with registrum.init(project=project, name="train") as run:
    run.log({"loss": 0.5}, step=1)
    run.log_artifact(folder / "out", name="predictions", type="predictions")
    run.log_checkpoint(folder / "epoch.ckpt", step=1)
    run.register_model(f"{project}-model", path=folder / "model.bin", aliases=["candidate"])
with registrum.init(project=project, job_type="evaluation") as ev:
    print(ev.use_model(f"{project}-model@candidate"))
print(run.id)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True)


def test_client_flows_work_with_auth_on_also_for_content_stored_elsewhere(
    server: Server, tmp_path: Path
) -> None:
    """Two users in projects of their own log the same bytes (the second finds them stored
    already and must send them); each reads back only what its own project holds."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "first")
    (repo / "train.py").write_text(SCRIPT + "# an uncommitted change\n")
    readers = {}
    for user, project in (("victim", "vault"), ("attacker", "mine")):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")},
            "REGISTRUM_URL": server.url,
            "REGISTRUM_TOKEN": server.tokens[user],
            "REGISTRUM_HOME": str(tmp_path / f"home-{user}"),
            "REGISTRUM_STRICT": "1",
        }
        work = tmp_path / f"work-{user}"
        work.mkdir()
        done = subprocess.run(
            [sys.executable, str(repo / "train.py"), str(work), project, "same content"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        *_, model_dir, run_id = done.stdout.split()
        assert (Path(model_dir) / "model.bin").read_text() == "same content"
        reader = server.client(user)
        readers[user] = reader
        version = reader.get_model_version(f"{project}-model@candidate")
        assert version.run_id == run_id
        [checkpoint] = reader.list_artifacts(project, name="checkpoints")
        assert checkpoint.file_count == 1
        code = reader.get_code_version(run_id)
        assert code is not None and code["dirty"]
        diff = b"".join(reader.read_blob(code["diff_sha256"])).decode()
        assert "+# an uncommitted change" in diff
        [f] = version.artifact.files
        assert b"".join(reader.read_blob(f.sha256)) == b"same content"
    # Each sent the same bytes, so each may read them; the other's project stays closed.
    with pytest.raises(Forbidden):
        readers["attacker"].get_model_version("vault-model@candidate")
    for reader in readers.values():
        reader.close()


def test_a_registration_from_the_spool_works_with_auth_on(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    for key in [k for k in os.environ if k.startswith("REGISTRUM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_TOKEN", server.tokens["attacker"])
    monkeypatch.setenv("REGISTRUM_MODE", "offline")
    weights = tmp_path / "w.bin"
    weights.write_bytes(SECRET)  # the same bytes the victim stored first
    with registrum.init(project="mine", store=server.url) as run:
        run.log_checkpoint(weights, step=1)
        assert run.register_model("offline-model", path=weights) is None
    sync(home)
    with closing(server.client("attacker")) as attacker:
        version = attacker.get_model_version("offline-model@1")
        assert version.run_id == run.id
        [f] = version.artifact.files
        assert b"".join(attacker.read_blob(f.sha256)) == SECRET


def test_optuna_registers_a_trials_logged_model_with_auth_on(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    optuna = pytest.importorskip("optuna", reason="needs optuna: pip install -e .[all]")
    from registrum_optuna import RegistrumCallback, trial_run

    for key in [k for k in os.environ if k.startswith("REGISTRUM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_TOKEN", server.tokens["attacker"])
    monkeypatch.setenv("REGISTRUM_STRICT", "1")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        with trial_run(trial) as run:
            model = tmp_path / f"model-{trial.number}.txt"
            model.write_text(SECRET.decode() if trial.number == 0 else f"x={x}")
            run.log_model(model, flavor="text")
        return x * x

    callback = RegistrumCallback(
        project="sweep", register_as="best", register="at_end", store=server.url
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3, callbacks=[callback])
    callback.finish(study)
    with closing(server.client("attacker")) as attacker:
        [version] = attacker.list_model_versions("best")
        [f] = version.artifact.files
        assert (
            b"".join(attacker.read_blob(f.sha256))
            == (tmp_path / (f"model-{study.best_trial.number}.txt")).read_bytes()
        )
