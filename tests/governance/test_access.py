"""Access control: users, hashed tokens, project roles enforced in the service layer, the
authorization matrix over every HTTP endpoint, the first admin, and `registrum server`'s
refusal to serve a non-loopback address without it."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text, update

from backends import BACKENDS, backend_params
from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import BlobNotFound, Conflict, Forbidden, NotFound, Unauthorized
from registrum.server import Settings, create_app
from registrum.store import schema as t
from registrum.store.acting import signed_in_as
from registrum.store.service import Store
from serving import free_port, running_server

ADMIN_TOKEN = "rgm_test-admin-token-0123456789"
ROLES = ("viewer", "editor", "reviewer")


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh embedded store, on SQLite and on PostgreSQL."""
    with BACKENDS[request.param](tmp_path) as store:
        yield store


def blob(store: Any, data: bytes) -> dict[str, Any]:
    info = store.put_blob(io.BytesIO(data))
    return {"path": "f.bin", "sha256": info.sha256, "size": info.size}


class Team:
    """A server admin, a project `p` with one user per role, and `outsider`, admin of `q`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.bootstrap_admin(token=ADMIN_TOKEN)
        self.root = store.authenticate(ADMIN_TOKEN)
        self.tokens: dict[str, str] = {"server": ADMIN_TOKEN}
        with signed_in_as(self.root):
            for name in (*ROLES, "padmin", "outsider", "spare"):
                store.create_user(name)
                token = store.create_token(user=name)
                assert token.token is not None
                self.tokens[name] = token.token
        with self.as_("padmin"):
            store.create_project("p")
            for role in ROLES:
                store.add_member("p", role, role)
        with self.as_("outsider"):
            store.create_project("q")

    @contextmanager
    def as_(self, name: str) -> Iterator[None]:
        with signed_in_as(self.store.authenticate(self.tokens[name])):
            yield


# -- the service layer, on SQLite and PostgreSQL ---------------------------------------------


def test_roles_decide_reads_writes_and_membership(local: Store) -> None:
    team = Team(local)
    with team.as_("editor"):
        run = local.create_run("p", name="r1")
        local.log_params(run.id, {"lr": 0.1})
        local.register_model_version("m", project="p", files=[blob(local, b"weights")])
        local.set_alias("m", "champion", 1)
    with team.as_("viewer"):
        assert local.get_run(run.id).params == {"lr": 0.1}
        assert local.get_model_version("m@champion").version == 1
        with pytest.raises(Forbidden, match="needs editor"):
            local.log_params(run.id, {"lr": 0.2})
        with pytest.raises(Forbidden):
            local.set_alias("m", "champion", 1)
        with pytest.raises(Forbidden, match="needs admin"):
            local.add_member("p", "spare", "viewer")
        members = [m.user for m in local.list_members("p")]
        assert members == ["editor", "padmin", "reviewer", "viewer"]
    with team.as_("outsider"):
        with pytest.raises(Forbidden, match="is not a member of project 'p'"):
            local.get_run(run.id)
        with pytest.raises(Forbidden):
            local.search_runs("p")
        with pytest.raises(Forbidden):
            local.create_run("p")
        assert [p.name for p in local.list_projects()] == ["q"]
        assert local.list_models() == []
    with team.as_("padmin"):
        local.add_member("p", "spare", "editor")
        assert local.add_member("p", "spare", "viewer").role == "viewer"
        with pytest.raises(Conflict, match="without an admin"):
            local.remove_member("p", "padmin")
        local.remove_member("p", "spare")
        with pytest.raises(Forbidden, match="server admin"):
            local.create_user("mallory")
    with team.as_("spare"):
        with pytest.raises(Forbidden):
            local.get_project("p")
        # Anyone signed in may make a project, and becomes its admin.
        local.create_run("own", name="mine")
        assert [(m.user, m.role) for m in local.list_members("own")] == [("spare", "admin")]
    with team.as_("server"):
        assert {p.name for p in local.list_projects()} == {"p", "q", "own"}
        assert local.get_run(run.id).id == run.id


def test_tokens_are_shown_once_stored_hashed_and_can_be_revoked_or_expire(local: Store) -> None:
    team = Team(local)
    with team.as_("editor"):
        made = local.create_token(name="ci")
        assert made.token is not None and made.token.startswith(made.prefix)
        listed = [k for k in local.list_tokens() if k.id == made.id]
        assert listed[0].token is None and listed[0].prefix == made.prefix
        with pytest.raises(Forbidden):
            local.list_tokens(user="viewer")
        with pytest.raises(Forbidden, match="belongs to 'viewer'"):
            local.revoke_token(_token_id(local, "viewer"))
    with local.engine.connect() as conn:
        dump = "\n".join(
            str(row) for table in t.metadata.sorted_tables for row in conn.execute(table.select())
        )
    assert made.token not in dump and ADMIN_TOKEN not in dump
    assert hashlib.sha256(made.token.encode()).hexdigest() in dump
    assert local.authenticate(made.token).name == "editor"

    with team.as_("editor"):
        local.revoke_token(made.id)
    with pytest.raises(Unauthorized, match="revoked"):
        local.authenticate(made.token)

    with team.as_("viewer"):
        short = local.create_token(name="short", expires_at=time.time() + 60)
    assert short.token is not None and local.authenticate(short.token).name == "viewer"
    with local.engine.begin() as conn:
        conn.execute(
            update(t.api_tokens)
            .where(t.api_tokens.c.id == short.id)
            .values(expires_at=time.time() - 1)
        )
    with pytest.raises(Unauthorized, match="expired"):
        local.authenticate(short.token)
    with pytest.raises(Unauthorized, match="not valid"):
        local.authenticate("rgm_" + "x" * 43)

    with team.as_("server"):
        local.disable_user("reviewer")
    with pytest.raises(Unauthorized, match="disabled"):
        local.authenticate(team.tokens["reviewer"])


def _token_id(store: Store, user: str) -> int:
    with signed_in_as(None):
        return next(k.id for k in store.list_tokens(user=user))


def test_audit_names_the_user_and_is_scoped_to_admins(local: Store) -> None:
    team = Team(local)
    with team.as_("editor"):
        run = local.create_run("p")
    with team.as_("outsider"):
        local.create_run("q")
    with team.as_("padmin"):
        events = local.list_audit()
        assert {e["project"] for e in events} == {"p"}
        created = [e for e in events if e["action"] == "run.created"]
        assert [(e["entity_id"], e["actor"]) for e in created] == [(run.id, "editor")]
        with pytest.raises(Forbidden):
            local.list_audit(project="q")
        with pytest.raises(Forbidden, match="server admin"):
            local.verify_audit()
    with team.as_("viewer"), pytest.raises(Forbidden, match="server admin or a project admin"):
        local.list_audit()
    with team.as_("server"):
        actions = {(e["action"], e["actor"]) for e in local.list_audit()}
        assert ("user.created", "admin") in actions
        assert ("token.created", "admin") in actions
        assert ("member.added", "padmin") in actions
        assert local.verify_audit()["ok"]


def test_blobs_lineage_and_evaluations_show_only_readable_projects(local: Store) -> None:
    team = Team(local)
    with team.as_("editor"):
        train = local.create_run("p")
        version = local.register_model_version(
            "m", project="p", run_id=train.id, files=[blob(local, b"secret weights")]
        )
    with team.as_("outsider"):
        # Answered as if the blob were not stored: a 403 would confirm that it is.
        with pytest.raises(BlobNotFound, match="is not stored"):
            local.read_blob(version.artifact.files[0].sha256)
        with pytest.raises(Forbidden):
            local.lineage(f"run:{train.id}")
        # An evaluation in q of p's model needs viewer on p to read the model at all.
        evaluation = local.create_run("q")
        with pytest.raises(Forbidden):
            local.add_run_input(evaluation.id, kind="model_version", target_id=version.id)
    with team.as_("padmin"):
        local.add_member("p", "outsider", "viewer")
    with team.as_("outsider"):
        local.add_run_input(evaluation.id, kind="model_version", target_id=version.id)
        local.log_metrics(evaluation.id, seq=0, keys=["acc"], steps=[0], values=[0.9])
        assert b"".join(local.read_blob(version.artifact.files[0].sha256)) == b"secret weights"
    with team.as_("viewer"):
        graph = local.lineage("model:m/1", direction="down")
        assert [n["id"] for n in graph["nodes"]] == ["model:m/1"]
        assert local.evaluations("m")["evaluations"] == []
    with team.as_("server"):
        graph = local.lineage("model:m/1", direction="down")
        assert f"run:{evaluation.id}" in {n["id"] for n in graph["nodes"]}
        assert len(local.evaluations("m")["evaluations"]) == 1


def test_the_embedded_store_has_every_right(local: Store) -> None:
    local.create_user("alice")
    run = local.create_run("p")
    local.log_params(run.id, {"a": 1})
    assert local.whoami().server_admin
    assert local.list_members("p") == []
    assert local.list_audit(project="p")[-1]["actor"] == "local"


# -- the HTTP API: every endpoint x every kind of caller ------------------------------------

# In this order: each caller's allowed writes (deleting the alias `tmp`, the member `temp`, a
# webhook) then leave the others a 404 or 409, which still shows they were let in.
# "scoped": the editor's token scoped to viewer of p, which may do no more than a viewer of p.
CALLERS = ("nobody", "scoped", "outsider", "viewer", "editor", "reviewer", "padmin", "server")
NEEDS: dict[str, set[str]] = {
    "public": set(CALLERS),
    "user": set(CALLERS) - {"nobody"},
    # Making projects and tokens: a scoped token may not step outside its scope.
    "unscoped": set(CALLERS) - {"nobody", "scoped"},
    "viewer": {"scoped", "viewer", "editor", "reviewer", "padmin", "server"},
    "editor": {"editor", "reviewer", "padmin", "server"},
    "admin": {"padmin", "server"},
    "server": {"server"},
    "owner": {"editor", "server"},
    "reviewer": {"reviewer", "padmin", "server"},
    "requester": {"editor", "padmin", "server"},  # who opened the request, or an admin
    # A blob by hash: who can read a project that references it (or uploaded it); to anyone
    # else it is not there (404), since a 403 would confirm that it is stored.
    "reader": {"scoped", "viewer", "editor", "reviewer", "padmin", "server"},
}
DENIED = {"reader": "404"}  # what a signed-in caller without the right gets; else 403


class World:
    """What the matrix requests point at, made through the API by the right users."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens
        admin = HttpStore(url, token=ADMIN_TOKEN)
        for name in (*ROLES, "padmin", "outsider", "spare", "temp"):
            admin.create_user(name)
            token = admin.create_token(user=name)
            assert token.token is not None
            tokens[name] = token.token
        tokens["server"] = ADMIN_TOKEN
        padmin = HttpStore(url, token=tokens["padmin"])
        padmin.create_project("p")
        for role in ROLES:
            padmin.add_member("p", role, role)
        padmin.add_member("p", "temp", "viewer")
        scoped = admin.create_token(user="editor", name="scoped", project="p", role="viewer")
        assert scoped.token is not None and (scoped.project, scoped.role) == ("p", "viewer")
        tokens["scoped"] = scoped.token
        HttpStore(url, token=tokens["outsider"]).create_project("q")
        editor = HttpStore(url, token=tokens["editor"])
        run = editor.create_run("p", name="r")
        editor.log_params(run.id, {"lr": 0.1})
        editor.log_metrics(run.id, seq=0, keys=["loss"], steps=[0], values=[1.0])
        diff = editor.put_blob(io.BytesIO(b"diff --git"))
        editor.set_code_version(run.id, commit="abc123", diff_sha256=diff.sha256)
        # A run whose code the matrix leaves alone, for the blob-by-hash cases.
        self.coded = editor.create_run("p", name="coded").id
        editor.set_code_version(self.coded, commit="abc123", diff_sha256=diff.sha256)
        self.diff = diff.sha256
        self.file = blob(editor, b"model weights")
        self.sha = self.file["sha256"]
        artifact = editor.create_artifact("p", "a", type="data", files=[self.file], run_id=run.id)
        self.file_ref = {"sha256": self.sha, "size": self.file["size"]}
        editor.log_media(run.id, "samples", step=0, kind="image", format="png", **self.file_ref)
        editor.log_dataset("p", "d", fingerprint="f" * 16, run_id=run.id, role="train")
        editor.log_dataset("p", "d", fingerprint="e" * 16)
        editor.register_model_version("m", project="p", run_id=run.id, files=[self.file])
        editor.set_alias("m", "champion", 1)
        editor.set_alias("m", "tmp", 1)
        # Deleted and restored by the matrix (each allowed caller deletes, then restores).
        editor.register_model_version("gone", project="p", files=[self.file])
        self.doomed_run = editor.create_run("p", name="doomed").id
        editor.create_artifact("p", "doomed", type="data", files=[self.file])
        padmin.create_project("pd")  # deleted and restored whole
        for role in ROLES:
            padmin.add_member("pd", role, role)
        editor.create_run("pd")
        padmin.set_policy("m", protected=["production"])
        self.requests = {
            action: editor.request_promotion("m", "production", 1)["id"]
            for action in ("approve", "reject", "cancel")
        }
        self.revocable = editor.create_token(name="spare").id
        hook = padmin.create_webhook("https://hooks.test/hook", ["run.finished"], project="p")
        self.hook = hook["id"]
        other = padmin.create_webhook("https://hooks.test/other", ["alias.moved"], project="p")
        self.doomed_hook = other["id"]
        self.run, self.artifact = run.id, artifact.id
        # A file in the run's file tree, written as MLflow's client writes one.
        experiment = editor.get_project("p").id
        put = requests.put(
            f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run.id}/artifacts/notes.txt",
            data=b"notes",
            headers={"authorization": f"Bearer {tokens['editor']}"},
            timeout=30,
        )
        assert put.ok, put.text
        for client in (admin, padmin, editor):
            client.close()


def requests_for(w: World) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per `METHOD /path`: the role it needs and the request's path values and body."""
    run, p = w.run, {"project": "p"}
    manifest = {"files": [w.file]}
    return {
        "GET /api/v1/health": ("public", {}),
        # Signing in: public, each checks what it is sent (tests/sso has the flows); this
        # server has no identity provider, so most answer 404.
        "GET /auth/providers": ("public", {}),
        "GET /auth/oidc/login": ("public", {}),
        "GET /auth/oidc/callback": ("public", {"params": {"state": "s", "code": "c"}}),
        "POST /auth/signout": ("public", {}),
        "POST /auth/device": ("public", {}),
        "POST /auth/device/token": ("public", {"json": {"login_id": "x"}}),
        "POST /auth/cli/token": ("public", {"json": {"code": "c", "code_verifier": "v"}}),
        "POST /auth/token-exchange": ("public", {"data": {"subject_token": "x"}}),
        "GET /api/v1/metrics": ("server", {}),
        "GET /api/v1/projects": ("user", {}),
        "POST /api/v1/projects": ("unscoped", {"json": {"name": "made"}}),
        "GET /api/v1/projects/{project}": ("viewer", p),
        "POST /api/v1/gc": ("server", {"json": {"dry_run": True}}),
        "PUT /api/v1/projects/{project}/retention": ("admin", {**p, "json": {}}),
        "POST /api/v1/projects/{project}/retention/apply": ("admin", p),
        "DELETE /api/v1/projects/{project}": ("admin", {"project": "pd"}),
        "POST /api/v1/projects/{project}/restore": ("admin", {"project": "pd"}),
        "POST /api/v1/runs": ("editor", {"json": {"project": "p", "id": run}}),
        "GET /api/v1/runs/{run_id}": ("viewer", {}),
        "PATCH /api/v1/runs/{run_id}": ("editor", {"json": {"name": "r"}}),
        "POST /api/v1/runs/{run_id}/status": ("editor", {"json": {"status": "running"}}),
        "POST /api/v1/runs/{run_id}/move": ("editor", {"json": {"project": "p"}}),
        "DELETE /api/v1/runs/{run_id}": ("editor", {"run_id": w.doomed_run}),
        "POST /api/v1/runs/{run_id}/restore": ("editor", {"run_id": w.doomed_run}),
        "DELETE /api/v1/models/{name}/versions/{ref}": ("admin", {"name": "gone", "ref": "1"}),
        "POST /api/v1/models/{name}/versions/{ref}/restore": (
            "admin",
            {"name": "gone", "ref": "1"},
        ),
        "DELETE /api/v1/models/{name}": ("admin", {"name": "gone"}),
        "POST /api/v1/models/{name}/restore": ("admin", {"name": "gone"}),
        "POST /api/v1/runs/{run_id}/heartbeat": ("editor", {}),
        "POST /api/v1/runs/{run_id}/params": ("editor", {"json": {"params": {"lr": 0.1}}}),
        "GET /api/v1/runs/{run_id}/params/{key}/history": ("viewer", {"key": "lr"}),
        "PATCH /api/v1/runs/{run_id}/tags": ("editor", {"json": {"tags": {"a": "b"}}}),
        "DELETE /api/v1/runs/{run_id}/tags/{key}": ("editor", {"key": "a"}),
        "PUT /api/v1/runs/{run_id}/environment": ("editor", {"json": {"python": "3"}}),
        "GET /api/v1/runs/{run_id}/environment": ("viewer", {}),
        "PUT /api/v1/runs/{run_id}/code": ("editor", {"json": {"commit": "abc123"}}),
        "GET /api/v1/runs/{run_id}/code": ("viewer", {}),
        "POST /api/v1/runs/{run_id}/inputs": (
            "editor",
            {"json": {"kind": "artifact", "target_id": w.artifact}},
        ),
        "GET /api/v1/runs/{run_id}/inputs": ("viewer", {}),
        "POST /api/v1/projects/{project}/runs/search": ("viewer", {**p, "json": {}}),
        "GET /api/v1/projects/{project}/runs": ("viewer", p),
        "POST /api/v1/runs/{run_id}/metrics": (
            "editor",
            {"json": {"seq": 0, "keys": ["loss"], "steps": [0], "values": [1.0]}},
        ),
        "GET /api/v1/runs/{run_id}/metrics": ("viewer", {}),
        "GET /api/v1/runs/{run_id}/metrics/{key}": ("viewer", {"key": "loss"}),
        "GET /api/v1/metrics/histories": (
            "viewer",
            {"params": {"run_id": w.run, "key": "loss", "max_points": 100}},
        ),
        "PUT /api/v1/runs/{run_id}/metric-step-scales": (
            "editor",
            {"json": {"key": "loss", "scale": 0}},
        ),
        "GET /api/v1/projects/{project}/keys": ("viewer", p),
        "GET /api/v1/runs/{run_id}/files": ("viewer", {}),
        "HEAD /api/v1/runs/{run_id}/files/{path}": ("viewer", {"path": "notes.txt"}),
        "GET /api/v1/runs/{run_id}/files/{path}": ("viewer", {"path": "notes.txt"}),
        "POST /api/v1/runs/{run_id}/media": (
            "editor",
            {"json": {"key": "notes", "step": 1, "kind": "text", "format": "txt", **w.file_ref}},
        ),
        "GET /api/v1/runs/{run_id}/media": ("viewer", {}),
        "GET /api/v1/runs/{run_id}/media/{step}": (
            "viewer",
            {"step": "0", "params": {"key": "samples"}},
        ),
        # Bytes of the caller's own: uploading p's would (rightly) let it read them after.
        "PUT /api/v1/blobs/{sha256}": ("user", {"sha256": OWN_SHA, "data": OWN_BYTES}),
        "POST /api/v1/blobs": ("user", {"data": b"anything"}),
        "HEAD /api/v1/blobs/{sha256}": ("reader", {"sha256": w.sha}),
        "GET /api/v1/blobs/{sha256}": ("reader", {"sha256": w.sha}),
        "POST /api/v1/blobs/missing": ("user", {"json": {"sha256s": [w.sha]}}),
        # Direct uploads (a bucket's presigned URLs); this server keeps a folder, so the start
        # answers "proxy" and an upload token names nothing (404): both let the caller in.
        "POST /api/v1/blobs/uploads": ("user", {"json": {"sha256": OWN_SHA, "size": 25}}),
        "GET /api/v1/blobs/uploads/{upload}": ("user", {"upload": "bm8"}),
        "POST /api/v1/blobs/uploads/{upload}/parts": (
            "user",
            {"upload": "bm8", "json": {"crc32": {"1": "AAAAAA=="}}},
        ),
        "POST /api/v1/blobs/uploads/{upload}/complete": (
            "user",
            {"upload": "bm8", "json": {"sha256": OWN_SHA, "size": 25}},
        ),
        "POST /api/v1/projects/{project}/artifacts": (
            "editor",
            {**p, "json": {"name": "a", "type": "data", **manifest}},
        ),
        "GET /api/v1/projects/{project}/artifacts": ("viewer", p),
        "GET /api/v1/projects/{project}/artifacts/{name}/versions/{version}": (
            "viewer",
            {**p, "name": "a", "version": "1"},
        ),
        "GET /api/v1/artifacts/{artifact_id}": ("viewer", {"artifact_id": w.artifact}),
        "DELETE /api/v1/projects/{project}/artifacts/{name}/versions/{version}": (
            "editor",
            {**p, "name": "doomed", "version": "1"},
        ),
        "POST /api/v1/projects/{project}/artifacts/{name}/versions/{version}/restore": (
            "editor",
            {**p, "name": "doomed", "version": "1"},
        ),
        "POST /api/v1/projects/{project}/datasets": (
            "editor",
            {**p, "json": {"name": "d", "fingerprint": "f" * 16}},
        ),
        "GET /api/v1/projects/{project}/datasets": ("viewer", p),
        "GET /api/v1/projects/{project}/datasets/{name}/versions/{version}": (
            "viewer",
            {**p, "name": "d", "version": "1"},
        ),
        "POST /api/v1/models": ("editor", {"json": {"name": "m2", "project": "p"}}),
        "GET /api/v1/models": ("user", {}),
        "GET /api/v1/models/{name}": ("viewer", {"name": "m"}),
        "PATCH /api/v1/models/{name}": ("editor", {"name": "m", "json": {"description": "x"}}),
        "POST /api/v1/models/{name}/versions": ("editor", {"name": "m", "json": manifest}),
        "GET /api/v1/models/{name}/versions": ("viewer", {"name": "m"}),
        "GET /api/v1/models/{name}/versions/{ref}": ("viewer", {"name": "m", "ref": "champion"}),
        "PATCH /api/v1/models/{name}/versions/{ref}": (
            "editor",
            {"name": "m", "ref": "1", "json": {"description": "x"}},
        ),
        "DELETE /api/v1/models/{name}/tags/{key}": ("editor", {"name": "m", "key": "k"}),
        "DELETE /api/v1/models/{name}/versions/{ref}/tags/{key}": (
            "editor",
            {"name": "m", "ref": "1", "key": "k"},
        ),
        "PUT /api/v1/models/{name}/aliases/{alias}": (
            "editor",
            {"name": "m", "alias": "champion", "json": {"version": 1}},
        ),
        "DELETE /api/v1/models/{name}/aliases/{alias}": ("editor", {"name": "m", "alias": "tmp"}),
        "GET /api/v1/lineage": ("viewer", {"params": {"node": "model:m/1"}}),
        "GET /api/v1/models/{name}/evaluations": ("viewer", {"name": "m"}),
        "GET /api/v1/projects/{project}/datasets/{name}/diff": (
            "viewer",
            {**p, "name": "d", "params": {"a": "1", "b": "2"}},
        ),
        "GET /api/v1/projects/{project}/datasets/{name}/models": ("viewer", {**p, "name": "d"}),
        "GET /api/v1/code/compare": ("viewer", {"params": {"a": run, "b": run}}),
        "GET /api/v1/audit": ("admin", {"params": {"project": "p"}}),
        "GET /api/v1/audit/verify": ("server", {}),
        "POST /api/v1/audit/verify": ("server", {"json": {"anchors": []}}),
        "GET /api/v1/audit/anchor": ("server", {}),
        "GET /api/v1/me": ("user", {}),
        "GET /api/v1/users": ("server", {}),
        "POST /api/v1/users": ("server", {"json": {"name": "newcomer"}}),
        "POST /api/v1/users/{name}/disable": ("server", {"name": "spare"}),
        "GET /api/v1/tokens": ("user", {}),
        "POST /api/v1/tokens": ("unscoped", {"json": {"name": "mine"}}),
        "DELETE /api/v1/tokens/{token_id}": ("owner", {"token_id": w.revocable}),
        "GET /api/v1/projects/{project}/members": ("viewer", p),
        "PUT /api/v1/projects/{project}/members/{user}": (
            "admin",
            {**p, "user": "spare", "json": {"role": "viewer"}},
        ),
        "DELETE /api/v1/projects/{project}/members/{user}": ("admin", {**p, "user": "temp"}),
        "POST /api/v1/webhooks": (
            "admin",
            {"json": {"url": "https://hooks.test/h", "events": ["alias.moved"], "model": "m"}},
        ),
        "GET /api/v1/webhooks": ("admin", {"params": {"project": "p"}}),
        "GET /api/v1/webhooks/{webhook_id}": ("admin", {"webhook_id": w.hook}),
        "DELETE /api/v1/webhooks/{webhook_id}": ("admin", {"webhook_id": w.doomed_hook}),
        "GET /api/v1/webhooks/{webhook_id}/deliveries": ("admin", {"webhook_id": w.hook}),
        "PUT /api/v1/models/{name}/policy": (
            "admin",
            {"name": "m", "json": {"protected": ["production"]}},
        ),
        "GET /api/v1/models/{name}/policy": ("viewer", {"name": "m"}),
        "POST /api/v1/models/{name}/requests": (
            "editor",
            {"name": "m", "json": {"alias": "production", "version": 1}},
        ),
        "GET /api/v1/models/{name}/requests": ("viewer", {"name": "m"}),
        "GET /api/v1/models/{name}/aliases/history": ("viewer", {"name": "m"}),
        "GET /api/v1/requests/{request_id}": ("viewer", {"request_id": w.requests["approve"]}),
        "POST /api/v1/requests/{request_id}/approve": (
            "reviewer",
            {"request_id": w.requests["approve"], "json": {"comment": "ok"}},
        ),
        "POST /api/v1/requests/{request_id}/reject": (
            "reviewer",
            {"request_id": w.requests["reject"], "json": {}},
        ),
        "POST /api/v1/requests/{request_id}/cancel": (
            "requester",
            {"request_id": w.requests["cancel"]},
        ),
    }


def api_routes() -> list[str]:
    """Every operation the app serves, as `METHOD /path`, from its OpenAPI description (which
    lists the routes of every included router)."""
    paths = create_app(Settings(auth=True)).openapi()["paths"]
    found = [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]
    assert len(found) > 50
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("auth-server")
    settings = Settings(
        store_url=f"sqlite:///{folder}/r.db",
        blobs=folder / "blobs",
        auth=True,
        admin_token=ADMIN_TOKEN,
        webhook_senders=0,
    )
    with running_server(settings) as url:
        yield World(url, {})


def call(w: World, caller: str, route: str, spec: dict[str, Any]) -> requests.Response:
    method, path = route.split(" ", 1)
    values = {"run_id": w.run, **spec}
    extra = {k: values.pop(k) for k in ("json", "params", "data") if k in values}
    headers = {} if caller == "nobody" else {"authorization": f"Bearer {w.tokens[caller]}"}
    url = w.url + path.format(**{k: str(x) for k, x in values.items()})
    return requests.request(method, url, headers=headers, timeout=30, **extra)


def test_every_endpoint_is_in_the_matrix(world: World) -> None:
    served, checked = set(api_routes()), set(requests_for(world))
    assert not served - checked, f"add to the authorization matrix: {sorted(served - checked)}"
    assert not checked - served, f"no longer served: {sorted(checked - served)}"


@pytest.mark.parametrize("caller", CALLERS)
def test_authorization_matrix(world: World, caller: str) -> None:
    wrong = []
    for route, (need, spec) in requests_for(world).items():
        status = call(world, caller, route, spec).status_code
        if caller in NEEDS[need]:
            expected = "allowed"
            ok = status not in (401, 403) and status < 500
        else:
            expected = "401" if caller == "nobody" else DENIED.get(need, "403")
            ok = str(status) == expected
        if not ok:
            wrong.append(f"{route} as {caller}: {status}, expected {expected}")
    assert not wrong, "\n".join(wrong)


OWN_BYTES = b"bytes of the caller's own"
OWN_SHA = hashlib.sha256(OWN_BYTES).hexdigest()


def blob_by_hash_requests(w: World, caller: str) -> dict[str, dict[str, Any]]:
    """What a caller may try with p's blobs knowing only their hashes, from a project and a
    run of its own (`own-CALLER`), by case."""
    own = f"own-{caller}"
    headers = {"authorization": f"Bearer {w.tokens[caller]}"}
    made = requests.post(f"{w.url}/api/v1/runs", json={"project": own}, headers=headers, timeout=30)
    assert made.ok, made.text
    run = made.json()["id"]
    manifest = [w.file]
    return {
        "HEAD the blob": {"method": "HEAD", "path": f"/blobs/{w.sha}"},
        "GET the blob": {"method": "GET", "path": f"/blobs/{w.sha}"},
        "GET the diff": {"method": "GET", "path": f"/blobs/{w.diff}"},
        "ask which are missing": {
            "method": "POST",
            "path": "/blobs/missing",
            "json": {"sha256s": [w.sha, w.diff]},
        },
        "name it in an artifact": {
            "method": "POST",
            "path": f"/projects/{own}/artifacts",
            "json": {"name": "copy", "type": "data", "files": manifest},
        },
        "name it as a code diff": {
            "method": "PUT",
            "path": f"/runs/{run}/code",
            "json": {"diff_sha256": w.diff},
        },
        "name it in a registration": {
            "method": "POST",
            "path": f"/models/{own}-model/versions",
            "json": {"project": own, "files": manifest},
        },
        "compare code with p's run": {
            "method": "GET",
            "path": "/code/compare",
            "params": {"a": run, "b": w.coded},
        },
    }


@pytest.mark.parametrize("caller", [c for c in CALLERS if c not in ("nobody", "scoped")])
def test_blob_by_hash_matrix(world: World, caller: str) -> None:
    """Knowing a hash gives nothing: a caller who cannot read p gets "not stored" (404, or
    "missing") for p's blobs, cannot reference them anywhere, and cannot compare code with
    p's runs (403); p's readers may do all of it."""
    allowed = caller in NEEDS["reader"]
    headers = {"authorization": f"Bearer {world.tokens[caller]}"}
    wrong = []
    for case, spec in blob_by_hash_requests(world, caller).items():
        method, path = spec.pop("method"), spec.pop("path")
        r = requests.request(
            method, f"{world.url}/api/v1{path}", headers=headers, timeout=30, **spec
        )
        if case == "ask which are missing":
            ok = r.ok and r.json()["missing"] == ([] if allowed else [world.sha, world.diff])
        elif allowed:
            ok = r.ok
        else:
            ok = r.status_code == (403 if case.startswith("compare") else 404)
        if not ok:
            wrong.append(f"{case} as {caller}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    if not allowed:  # and after all those tries, the bytes are still out of reach
        got = requests.get(f"{world.url}/api/v1/blobs/{world.sha}", headers=headers, timeout=30)
        assert got.status_code == 404


def test_audit_over_http_names_the_signed_in_user(world: World) -> None:
    with closing(HttpStore(world.url, token=world.tokens["reviewer"])) as reviewer:
        run = reviewer.create_run("p", name="by-reviewer")
    with closing(HttpStore(world.url, token=ADMIN_TOKEN)) as admin:
        events = admin.list_audit(entity_id=run.id)
    assert [(e["action"], e["actor"]) for e in events] == [("run.created", "reviewer")]


def test_the_cli_manages_members_over_http(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REGISTRUM_TOKEN", world.tokens["viewer"])
    assert main(["members", "list", "p", "--store", world.url]) == 0
    assert "padmin" in capsys.readouterr().out
    assert main(["members", "add", "p", "spare", "editor", "--store", world.url]) == 1
    assert "needs admin" in capsys.readouterr().err
    monkeypatch.setenv("REGISTRUM_TOKEN", world.tokens["padmin"])
    assert main(["tokens", "create", "--name", "cli", "--store", world.url]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    with closing(HttpStore(world.url, token=secret)) as store:
        assert store.whoami().name == "padmin"
    monkeypatch.delenv("REGISTRUM_TOKEN")
    assert main(["members", "list", "p", "--store", world.url]) == 1
    assert "REGISTRUM_TOKEN" in capsys.readouterr().err


def test_the_cli_manages_users_embedded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["users", "add", "alice", "--store", url]) == 0
    assert main(["tokens", "create", "--user", "alice", "--store", url]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert main(["members", "add", "p", "alice", "editor", "--store", url]) == 1  # no project p
    assert main(["users", "list", "--store", url]) == 0
    assert "alice" in capsys.readouterr().out
    from registrum.store import open_store

    store = open_store(url, blobs=tmp_path / "blobs")
    try:
        assert store.authenticate(secret).name == "alice"
    finally:
        store.close()


# -- the server ------------------------------------------------------------------------------


def test_the_first_start_makes_a_server_admin_and_prints_its_token_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs", auth=True)
    with running_server(settings) as url:
        printed = capsys.readouterr().err
        token = next(w for w in printed.split() if w.startswith("rgm_"))
        assert requests.get(f"{url}/api/v1/projects", timeout=10).status_code == 401
        with closing(HttpStore(url, token=token)) as admin:
            assert admin.whoami().server_admin
        with closing(HttpStore(url, token=token + "x")) as wrong, pytest.raises(Unauthorized):
            wrong.list_projects()
    with running_server(settings) as url:
        assert "rgm_" not in capsys.readouterr().err
        with closing(HttpStore(url, token=token)) as admin:
            assert [u.name for u in admin.list_users()] == ["admin"]


def test_without_auth_the_server_acts_for_anyone(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url, closing(HttpStore(url)) as store:
        store.create_run("p")
        assert store.whoami().name == "local"
        with pytest.raises(NotFound):
            store.remove_member("p", "nobody")


def server_command(tmp_path: Path, *extra: str) -> list[str]:
    port = str(free_port())
    command = [sys.executable, "-m", "registrum.cli", "server", "--port", port]
    return [*command, "--store", f"sqlite:///{tmp_path}/r.db", "--log-level", "warning", *extra]


def test_server_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    done = subprocess.run(
        server_command(tmp_path, "--host", "0.0.0.0"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0" in lines[0]
    assert "--auth" in lines[0] and "--insecure" in lines[0]


def test_server_starts_on_a_public_address_with_insecure(tmp_path: Path) -> None:
    command = server_command(tmp_path, "--host", "0.0.0.0", "--insecure")
    port = command[command.index("--port") + 1]
    with subprocess.Popen(command) as proc:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", proc.poll)
        finally:
            proc.terminate()
            proc.wait(10)


def wait_healthy(url: str, poll: Callable[[], int | None]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert poll() is None, "the server exited"
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the server did not become healthy in 60 s"
        time.sleep(0.1)


def test_the_database_keeps_no_secret(local: Store) -> None:
    secret = local.bootstrap_admin()
    assert secret is not None and local.bootstrap_admin() is None
    with local.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash, prefix FROM api_tokens")).all()
    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(), secret[:12])]
