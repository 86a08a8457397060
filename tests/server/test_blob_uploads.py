"""A server whose blobs live in an S3 bucket (moto's server over loopback): direct transfers
through presigned URLs, the check of what arrived, resumed uploads, --proxy-blobs, and a
clear refusal to start on a bucket that cannot be used."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

import registrum
from backends import POSTGRES, backend_params
from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from polling import wait_for
from registrum.cli import main
from registrum.client.http import HttpStore
from registrum.errors import BlobNotFound, HashMismatch, StoreUnavailable
from registrum.server import Settings, create_app
from registrum.store import Store, open_store
from registrum.store.blobs_s3 import S3BlobStore
from registrum.store.tracking import blob_direct
from registrum.store.tracking.blob_direct import encode_token
from serving import ADMIN_TOKEN, serve_app

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part, so that tests make several parts of little data


@dataclass
class S3Server:
    url: str
    store: Store
    bucket: str

    @property
    def s3(self) -> S3BlobStore:
        assert isinstance(self.store.blobs, S3BlobStore)
        return self.store.blobs

    def objects(self) -> list[str]:
        listed = self.s3.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed)


@contextmanager
def start(
    tmp_path: Path, bucket: str, store_url: str | None = None, **options: Any
) -> Iterator[S3Server]:
    settings = Settings(
        store_url=store_url or f"sqlite:///{tmp_path}/r.db",
        blobs=f"s3://{bucket}/team",
        webhook_senders=0,
        **options,
    )
    app = create_app(settings)
    with serve_app(app) as url:
        yield S3Server(url, app.state.store, bucket)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blob_direct, "PART_SIZE", PART)


@pytest.fixture
def server(s3_bucket: str, tmp_path: Path, small_parts: None) -> Iterator[S3Server]:  # noqa: F811
    with start(tmp_path, s3_bucket) as found:
        yield found


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def server_any(
    request: pytest.FixtureRequest,
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    small_parts: None,
) -> Iterator[S3Server]:
    """A server on the bucket, with its database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        with start(tmp_path, s3_bucket) as found:
            yield found
        return
    with POSTGRES.database() as url, start(tmp_path, s3_bucket, url) as found:
        yield found


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    monkeypatch.delenv("REGISTRUM_MODE", raising=False)
    return tmp_path / "home"


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def put(url: str, data: bytes, headers: dict[str, str]) -> requests.Response:
    """A PUT to a presigned URL, as a client sends it."""
    return requests.put(url, data=data, headers=headers, timeout=60)


def put_part(store: Store, upload: str, number: int, data: bytes) -> None:
    """Sends one part as a client does: its URL asked for with its CRC32, which it carries."""
    url = store.direct_part_urls(upload, {str(number): crc32(data)})["urls"][str(number)]
    answer = put(url, data, {"x-amz-checksum-crc32": crc32(data)})
    assert answer.ok, answer.text


def write(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


# -- the normal client, end to end ------------------------------------------------------


def test_runs_log_register_and_download_through_the_bucket(
    server_any: S3Server, home: Path, tmp_path: Path
) -> None:
    server = server_any
    model = tmp_path / "model"
    model.mkdir()
    small_sha = write(model / "config.json", 300)
    big_sha = write(model / "weights.bin", 3 * PART + 123)  # four parts, in parallel
    with registrum.init(project="vision", store=server.url, capture_environment=False) as run:
        artifact = run.log_artifact(model, name="model", type="model")
        assert artifact is not None
        version = run.register_model("cnn", path=model, aliases=["candidate"])
        assert version is not None and version.version == 1
    assert {f.sha256 for f in artifact.files} == {small_sha, big_sha}
    # The bytes went to the bucket, under their hashes; nothing is left in staging.
    keys = server.objects()
    assert f"team/{big_sha[:2]}/{big_sha}" in keys and f"team/{small_sha[:2]}/{small_sha}" in keys
    assert not [k for k in keys if "/.staging/" in k and not k.endswith(".claim")]
    # The multipart upload was published in place: its bytes were not copied.
    big_at, big_size = server.s3.located(big_sha)
    assert big_at.startswith(server.s3.upload_key("")) and big_size == 3 * PART + 123
    assert server.s3.located(small_sha) == (f"team/{small_sha[:2]}/{small_sha}", 300)
    # Downloads: a redirect to a presigned GET, followed by the client.
    with closing(HttpStore(server.url)) as client:
        blob = f"{server.url}/api/v1/blobs/{big_sha}"
        answer = client.session.get(
            blob, params={"redirect": "true"}, allow_redirects=False, timeout=30
        )
        assert answer.status_code == 307
        assert answer.headers["location"].startswith(os.environ["AWS_ENDPOINT_URL"])
        # Without asking (the web UI, which fetches from its own origin only): the bytes.
        proxied = client.session.get(blob, headers={"range": "bytes=0-9"}, timeout=30)
        assert proxied.status_code == 206
        assert proxied.content == (model / "weights.bin").read_bytes()[:10]
        assert (
            b"".join(client.read_blob(big_sha, 10, 19))
            == (model / "weights.bin").read_bytes()[10:20]
        )
    with registrum.init(project="vision", store=server.url, job_type="evaluation") as evaluation:
        folder = evaluation.use_model("cnn@candidate")
    for name in ("config.json", "weights.bin"):
        assert (folder / name).read_bytes() == (model / name).read_bytes()


def test_presigned_urls_name_the_public_endpoint_where_one_is_set(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server reaches the bucket at AWS_ENDPOINT_URL; clients at REGISTRUM_S3_PUBLIC_URL
    (here another name of the same loopback endpoint), which presigned URLs name."""
    public = os.environ["AWS_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    monkeypatch.setenv("REGISTRUM_S3_PUBLIC_URL", public)
    with start(tmp_path, s3_bucket) as found, closing(HttpStore(found.url)) as client:
        source = tmp_path / "weights"
        sha = write(source, 2 * PART + 3)
        assert client.upload_direct(source, sha256=sha) is not None
        answer = client.session.get(
            f"{found.url}/api/v1/blobs/{sha}", params={"redirect": "true"}, timeout=30
        )
        assert answer.status_code == 200 and answer.url.startswith(public)
        assert b"".join(client.read_blob(sha)) == source.read_bytes()


def test_the_progress_line_counts_every_byte_sent_straight_to_the_bucket(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registrum.client import files

    shown: list[files.Progress] = []

    class Counted(files.Progress):
        def __init__(self, label: str, total: int) -> None:
            super().__init__(label, total)
            shown.append(self)

    monkeypatch.setattr(files, "Progress", Counted)
    (tmp_path / "ckpt").mkdir()
    write(tmp_path / "ckpt" / "small.bin", 1000)
    write(tmp_path / "ckpt" / "large.bin", 3 * PART + 17)
    with closing(HttpStore(server.url)) as client:
        files.upload(client, files.collect(tmp_path / "ckpt"), label="uploading ckpt")
        assert client.direct.parts_sent == 5  # one PUT and four parts
    (progress,) = shown
    assert progress.done == progress.total == 3 * PART + 17 + 1000


def test_content_the_store_has_is_not_sent_again(server: S3Server, tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    sha = write(source, 2 * PART + 1)
    with closing(HttpStore(server.url)) as client:
        assert client.upload_direct(source) is not None  # digest unknown: hashed on the way
        sent = client.direct.parts_sent
        assert sent == 3
        info = client.upload_direct(source, sha256=sha)
        assert info is not None and info.sha256 == sha
        assert client.direct.parts_sent == sent


def test_downloads_never_carry_the_clients_token(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    small_parts: None,
) -> None:
    seen: list[dict[str, str]] = []
    with (
        start(tmp_path, s3_bucket, auth=True, admin_token=ADMIN_TOKEN) as found,
        closing(HttpStore(found.url, token=ADMIN_TOKEN)) as client,
    ):
        source = tmp_path / "weights"
        sha = write(source, 1000)
        assert client.upload_direct(source, sha256=sha) is not None
        client.direct._bucket.hooks["response"].append(
            lambda r, *a, **k: seen.append(dict(r.request.headers))
        )
        assert b"".join(client.read_blob(sha)) == source.read_bytes()
    assert seen and all("authorization" not in {h.lower() for h in s} for s in seen)


# -- what arrives is checked ------------------------------------------------------------


def test_moto_does_not_enforce_checksums_so_single_puts_are_read_back(server: S3Server) -> None:
    """Where the bucket enforces `x-amz-checksum-sha256` (AWS S3), a single PUT goes straight
    to the blob's key; moto accepts any bytes, so the probe says so and such a PUT goes to
    staging and is read back like a multipart upload."""
    assert server.s3.enforces_checksums() is False
    data = b"checked anyway"
    sha = hashlib.sha256(data).hexdigest()
    started = server.store.begin_direct_upload(sha256=sha, size=len(data))
    assert "/.staging/" in started["url"]
    assert started["headers"]["x-amz-checksum-sha256"]


def _plant(url: str, token: str | None, sha: str, data: bytes, declared: int) -> dict[str, Any]:
    """Uploads `data` declaring it as `sha` of `declared` bytes, as a hostile client would;
    returns the final state."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    api = f"{url}/api/v1/blobs/uploads"
    started = requests.post(
        api, json={"sha256": sha, "size": declared}, headers=headers, timeout=30
    ).json()
    assert started["mode"] == "direct" and not started["present"], started
    if "url" in started:
        assert put(started["url"], data, started["headers"]).ok
    else:
        for n in started["missing"]:
            offset = (n - 1) * started["part_size"]
            part = data[offset : offset + started["part_size"]]
            urls = requests.post(
                f"{api}/{started['upload']}/parts",
                json={"crc32": {str(n): crc32(part)}},
                headers=headers,
                timeout=30,
            ).json()["urls"]
            assert put(urls[str(n)], part, {"x-amz-checksum-crc32": crc32(part)}).ok
    token_ = started["upload"]
    done = requests.post(
        f"{api}/{token_}/complete", json={"sha256": sha, "size": declared}, headers=headers
    )
    assert done.status_code in (200, 202), done.text
    for _ in range(200):
        state = requests.get(f"{api}/{token_}", headers=headers, timeout=30).json()
        if state["state"] in ("done", "rejected"):
            return dict(state)
        time.sleep(0.05)
    raise AssertionError("the upload was never checked")


@pytest.mark.parametrize("size", [1000, 2 * PART + 7], ids=["single-put", "multipart"])
def test_a_declared_hash_never_plants_other_bytes(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    small_parts: None,
    size: int,
) -> None:
    """A client declaring the hash of someone else's file, with other bytes, stores nothing:
    not before the victim uploads (the victim's upload then stores the real bytes), and not
    over the victim's stored blob (which stays intact and out of the attacker's reach)."""
    real = os.urandom(size)
    fake = os.urandom(size)
    sha = hashlib.sha256(real).hexdigest()
    with start(tmp_path, s3_bucket, auth=True, admin_token=ADMIN_TOKEN) as found:
        with closing(HttpStore(found.url, token=ADMIN_TOKEN)) as admin:
            tokens = {}
            for name in ("victim", "attacker"):
                admin.create_user(name)
                made = admin.create_token(user=name)
                assert made.token is not None
                tokens[name] = made.token
        # Before the victim uploads: the attacker's bytes are rejected, nothing is stored.
        state = _plant(found.url, tokens["attacker"], sha, fake, size)
        assert state["state"] == "rejected" and "hashes to" in state["reason"]
        assert not found.s3.exists(sha)
        assert not [k for k in found.objects() if k.startswith("team/") and sha in k]
        assert all(k.endswith(".claim") for k in found.objects())  # its bytes went too
        with closing(HttpStore(found.url, token=tokens["victim"])) as victim:
            assert victim.missing_blobs([sha]) == [sha]
            source = tmp_path / "victim.bin"
            source.write_bytes(real)
            assert victim.upload_direct(source, sha256=sha) is not None
            assert b"".join(victim.read_blob(sha)) == real
            # Over the stored blob: rejected again; the victim's bytes stay.
            state = _plant(found.url, tokens["attacker"], sha, fake, size)
            assert state["state"] == "rejected"
            assert b"".join(victim.read_blob(sha)) == real
        with closing(HttpStore(found.url, token=tokens["attacker"])) as attacker:
            with pytest.raises(BlobNotFound):
                attacker.blob_size(sha)
            assert attacker.missing_blobs([sha]) == [sha]
            # A rejected upload is a clear error in the client too.
            liar = tmp_path / "liar.bin"
            liar.write_bytes(fake)
            with pytest.raises(HashMismatch, match="not the declared"):
                attacker.upload_direct(liar, sha256=sha)


@pytest.mark.parametrize("enforcing", [False, True], ids=["moto", "as-if-enforcing"])
def test_a_stored_blob_is_not_granted_without_the_bytes(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
    enforcing: bool,
) -> None:
    """Knowing the hash of a stored blob and completing an upload without sending its bytes
    grants nothing, whether or not the bucket would check a PUT's checksum."""
    monkeypatch.setattr(S3BlobStore, "enforces_checksums", lambda self: enforcing)
    data = b"the victim's weights"
    sha = hashlib.sha256(data).hexdigest()
    with start(tmp_path, s3_bucket, auth=True, admin_token=ADMIN_TOKEN) as found:
        with closing(HttpStore(found.url, token=ADMIN_TOKEN)) as admin:
            admin.create_user("attacker")
            made = admin.create_token(user="attacker")
            source = tmp_path / "w"
            source.write_bytes(data)
            assert admin.upload_direct(source, sha256=sha) is not None
        headers = {"authorization": f"Bearer {made.token}"}
        api = f"{found.url}/api/v1/blobs/uploads"
        started = requests.post(
            api, json={"sha256": sha, "size": len(data)}, headers=headers, timeout=30
        ).json()
        assert started["present"] is False and "/.staging/" in started["url"]
        done = requests.post(
            f"{api}/{started['upload']}/complete",
            json={"sha256": sha, "size": len(data)},
            headers=headers,
            timeout=30,
        )
        assert done.status_code == 400 and "nothing of this size" in done.text
        with closing(HttpStore(found.url, token=made.token)) as attacker:
            assert attacker.missing_blobs([sha]) == [sha]


def test_an_upload_left_unchecked_is_checked_by_the_sweep(server: S3Server) -> None:
    """The server that took a completed upload died before checking it: any replica's
    periodic sweep finishes the check."""
    data = os.urandom(PART + 10)
    sha = hashlib.sha256(data).hexdigest()
    store = server.store
    started = store.begin_direct_upload(sha256=None, size=len(data))
    for n in started["missing"]:
        put_part(store, started["upload"], n, data[(n - 1) * PART : n * PART])
    # Completed through the store itself: no background check runs.
    assert store.complete_direct_upload(started["upload"], sha256=sha, size=len(data))["state"] == (
        "verifying"
    )
    assert not store.blobs.exists(sha)
    assert store.verify_pending_uploads(3600) == 0  # not old enough to be taken over
    assert store.verify_pending_uploads(0) == 1
    assert store.blobs.exists(sha)
    assert store.direct_upload_state(started["upload"])["state"] == "done"
    assert store.verify_pending_uploads(0) == 0


# -- resuming ---------------------------------------------------------------------------

_SLOW_CLIENT = """
import sys, time
from registrum.client import direct
from registrum.client.http import HttpStore

send = direct.DirectTransfers._put


def slowly(self, *args, **kwargs):
    send(self, *args, **kwargs)
    time.sleep(0.4)


direct.DirectTransfers._put = slowly
direct.WORKERS = 2
HttpStore(sys.argv[1]).upload_direct(sys.argv[2])
"""


def test_a_killed_upload_resumes_from_its_finished_parts(
    server: S3Server, home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "epoch=3.ckpt"
    sha = write(source, 8 * PART - 3)  # eight parts
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CLIENT, server.url, str(source)],
        env={**os.environ, "REGISTRUM_HOME": str(home)},
    )
    staging = server.s3.upload_key("")
    finished: list[Any] = []
    deadline = time.monotonic() + 60
    while len(finished) < 3 and time.monotonic() < deadline:
        uploads = server.s3.client.list_multipart_uploads(Bucket=server.bucket, Prefix=staging)
        for upload in uploads.get("Uploads", []):
            finished = server.s3.list_parts(upload["Key"], upload["UploadId"])
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert 3 <= len(finished) < 8
    (kept,) = (home / "uploads").iterdir()  # the upload's token, kept for the resume
    with closing(HttpStore(server.url)) as client:
        (upload,) = server.s3.client.list_multipart_uploads(Bucket=server.bucket, Prefix=staging)[
            "Uploads"
        ]
        arrived = len(server.s3.list_parts(upload["Key"], upload["UploadId"]))
        info = client.upload_direct(source)
        assert info is not None and info.sha256 == sha
        assert client.direct.parts_sent == 8 - arrived  # only the missing parts went
        assert hashlib.sha256(b"".join(client.read_blob(sha))).hexdigest() == sha
    assert not kept.exists()


def test_a_forgotten_upload_starts_again(server: S3Server, home: Path, tmp_path: Path) -> None:
    """A kept upload the server no longer knows (swept) is started afresh."""
    source = tmp_path / "ckpt"
    sha = write(source, PART + 1)
    with closing(HttpStore(server.url)) as client:
        started = client._json("POST", "/blobs/uploads", body={"sha256": None, "size": PART + 1})
        from registrum.client.direct import resume_path

        keep = resume_path(client.url, source.stat())
        keep.parent.mkdir(parents=True)
        keep.write_text(f'{{"upload": "{started["upload"]}"}}')
        assert server.store.sweep_partial_uploads(1e-9) >= 1  # aborted as stale
        info = client.upload_direct(source)
        assert info is not None and info.sha256 == sha
        assert client.direct.parts_sent == 2


def test_the_sweep_spares_live_uploads_and_aborts_stale_ones(server: S3Server) -> None:
    store = server.store
    started = store.begin_direct_upload(sha256=None, size=2 * PART)
    # Fresh, with no part yet: spared, though moto reports every upload as begun in 2010.
    assert store.sweep_partial_uploads(3600) == 0
    put_part(store, started["upload"], 1, os.urandom(PART))
    assert store.sweep_partial_uploads(3600) == 0
    assert store.direct_upload_state(started["upload"])["parts"] == [{"number": 1, "size": PART}]
    assert store.sweep_partial_uploads(1e-9) == 1
    with pytest.raises(Exception, match="does not exist"):
        store.direct_upload_state(started["upload"])


# -- proxying ---------------------------------------------------------------------------


def test_proxy_blobs_passes_bytes_through_the_server(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    home: Path,
    small_parts: None,
) -> None:
    with start(tmp_path, s3_bucket, proxy_blobs=True) as found:
        answer = requests.post(
            f"{found.url}/api/v1/blobs/uploads", json={"sha256": None, "size": 10}, timeout=30
        )
        assert answer.json() == {"mode": "proxy"}
        source = tmp_path / "weights.bin"
        sha = write(source, 20 * MiB + 5)  # through the server's multipart writer
        with registrum.init(project="p", store=found.url, capture_environment=False) as run:
            artifact = run.log_artifact(source, name="w")
        assert artifact is not None and artifact.files[0].sha256 == sha
        got = requests.get(f"{found.url}/api/v1/blobs/{sha}", allow_redirects=False, timeout=30)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == sha
        assert found.s3.exists(sha)


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"sha256": "nope", "size": 1},
        {"sha256": None, "size": -1},
        {"sha256": None, "size": "1"},
        {"sha256": None, "size": 6 << 40},
        {"sha256": None},
        {"sha256": None, "size": 1, "extra": 1},
    ],
)
def test_a_bad_start_is_a_400(server: S3Server, body: dict[str, Any]) -> None:
    before = server.objects()
    answer = requests.post(f"{server.url}/api/v1/blobs/uploads", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"]
    assert server.objects() == before


@pytest.mark.parametrize("token", ["nope", "x" * 5000, "e30", "eyJuIjoiLi4vLi4ifQ"])
def test_an_unknown_or_forged_upload_token_is_a_404(server: S3Server, token: str) -> None:
    api = f"{server.url}/api/v1/blobs/uploads/{token}"
    assert requests.get(api, timeout=30).status_code == 404
    done = requests.post(f"{api}/complete", json={"sha256": "a" * 64, "size": 1}, timeout=30)
    assert done.status_code == 404


def test_completing_too_early_or_wrongly_is_a_400_and_the_upload_stays(server: S3Server) -> None:
    api = f"{server.url}/api/v1/blobs/uploads"
    started = requests.post(api, json={"sha256": None, "size": 2 * PART}, timeout=30).json()
    token = started["upload"]
    sha = "b" * 64
    early = requests.post(f"{api}/{token}/complete", json={"sha256": sha, "size": 2 * PART})
    assert early.status_code == 400 and "have not arrived" in early.json()["error"]["message"]
    wrong = requests.post(f"{api}/{token}/complete", json={"sha256": sha, "size": 3})
    assert wrong.status_code == 400
    bad = requests.post(f"{api}/{token}/complete", json={"sha256": "x", "size": 2 * PART})
    assert bad.status_code == 400
    state = requests.get(f"{api}/{token}", timeout=30).json()
    assert state["state"] == "uploading" and state["missing"] == [1, 2]


def test_a_multipart_upload_completed_without_its_hash_is_stored_under_what_it_hashes_to(
    server: S3Server,
) -> None:
    """The client need not read a large file twice: the server's read-back hashes it, and
    the state says the digest. A single PUT's upload needs its sha256 (it is signed in)."""
    data = os.urandom(PART + 7)
    sha = hashlib.sha256(data).hexdigest()
    api = f"{server.url}/api/v1/blobs/uploads"
    started = requests.post(api, json={"sha256": None, "size": len(data)}, timeout=30).json()
    token = started["upload"]
    put_part(server.store, token, 1, data[:PART])
    put_part(server.store, token, 2, data[PART:])
    done = requests.post(f"{api}/{token}/complete", json={"size": len(data)}, timeout=30)
    assert done.status_code in (200, 202), done.text
    assert done.json()["sha256"] is None  # not known before the check
    state = wait_for(
        lambda: (
            (got := requests.get(f"{api}/{token}", timeout=30).json())["state"] == "done" and got
        ),
        "the server's check of the upload",
    )
    assert (state["sha256"], state["size"]) == (sha, len(data))
    assert b"".join(server.store.blobs.iter_range(sha)) == data

    forged = encode_token({"n": "0" * 32, "u": None, "z": 3, "p": PART, "s": None})
    answer = requests.post(f"{api}/{forged}/complete", json={"size": 3}, timeout=30)
    assert answer.status_code == 400 and "its sha256" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "crc",
    [
        {"3": "AAAAAA=="},
        {"0": "AAAAAA=="},
        {"x": "AAAAAA=="},
        {"1": "AAAA"},
        {"1": "not base64!"},
        {"1": 5},
        {},
        [],
        "1",
    ],
)
def test_bad_part_checksums_are_a_400(server: S3Server, crc: Any) -> None:
    api = f"{server.url}/api/v1/blobs/uploads"
    started = requests.post(api, json={"sha256": None, "size": 2 * PART}, timeout=30).json()
    answer = requests.post(f"{api}/{started['upload']}/parts", json={"crc32": crc}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"]


def test_a_part_with_other_bytes_than_its_checksum_fails_the_check(server: S3Server) -> None:
    """moto checks a part's signed CRC32 no more than a PUT's sha256 (the bucket, not
    Registrum, refuses such a part on AWS); either way the whole object's sha256 is checked
    before the blob counts, so the upload is rejected and nothing is kept."""
    data = os.urandom(PART + 1)
    sha = hashlib.sha256(data).hexdigest()
    store = server.store
    started = store.begin_direct_upload(sha256=sha, size=len(data))
    token = started["upload"]
    url = store.direct_part_urls(token, {"1": crc32(data[:PART])})["urls"]["1"]
    other = os.urandom(PART)
    put(url, other, {"x-amz-checksum-crc32": crc32(data[:PART])})
    put_part(store, token, 2, data[PART:])
    assert store.complete_direct_upload(token, sha256=sha, size=len(data))["state"] == "verifying"
    assert store.verify_direct_upload(token) == "rejected"
    assert not store.blobs.exists(sha)


def test_a_folder_server_answers_proxy(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/r.db", blobs=tmp_path / "blobs")
    with serve_app(create_app(settings)) as url:
        answer = requests.post(f"{url}/api/v1/blobs/uploads", json={"size": 3}, timeout=30)
        assert answer.json() == {"mode": "proxy"}
        assert requests.get(f"{url}/api/v1/blobs/uploads/e30", timeout=30).status_code == 404


# -- starting -----------------------------------------------------------------------------


def test_a_missing_bucket_stops_the_start_with_what_to_fix(
    s3_env: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(StoreUnavailable, match="'no-such-bucket' does not exist"):
        open_store(f"sqlite:///{tmp_path}/r.db", blobs="s3://no-such-bucket/x")
    code = main(
        ["server", "--store", f"sqlite:///{tmp_path}/r.db", "--blobs", "s3://no-such-bucket/x"]
    )
    assert code == 2
    assert "no-such-bucket' does not exist" in capsys.readouterr().err


def test_missing_credentials_stop_the_start_with_what_to_fix(
    s3_env: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreUnavailable, match="no AWS credentials found"):
        open_store(f"sqlite:///{tmp_path}/r.db", blobs="s3://any-bucket")


def test_an_unreachable_endpoint_stops_the_start(
    s3_env: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing answers
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreUnavailable, match="does not answer"):
        open_store(f"sqlite:///{tmp_path}/r.db", blobs="s3://any-bucket")


def test_registrum_blobs_selects_the_bucket(
    s3_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from registrum.cli.server import add_commands

    monkeypatch.setenv("REGISTRUM_BLOBS", f"s3://{s3_bucket}/p")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["server"])
    assert args.blobs == f"s3://{s3_bucket}/p" and args.proxy_blobs is False
    assert parser.parse_args(["server", "--proxy-blobs"]).proxy_blobs is True
    boto3.client("s3").head_bucket(Bucket=s3_bucket)
