"""A run's files (the tree MLflow's artifact proxy writes) through Registrum's own ways in:
`GET /api/v1/runs/{id}/files[/{path}]` (paged list, streamed download with ranges, HEAD),
`registrum.Client.run_files` / `download_run_files` on both transports, and
`registrum runs files|download|show`."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from registrum.cli import main
from registrum.client.api import Client
from registrum.entities import ArtifactFile
from registrum.errors import ArtifactNotFound, InvalidArgument, RunNotFound
from registrum.server import Settings
from serving import running_server
from targets import Target

WEIGHTS = bytes(range(256)) * 40  # 10,240 bytes
FILES = {
    "model/MLmodel": b"flavors: {}\n",
    "model/weights.bin": WEIGHTS,
    "notes.txt": b"first try\n",
    "plots/loss.png": b"\x89PNG fake",
}


def write(target_url: str | None, reader: Any, run_id: str, path: str, data: bytes) -> None:
    """Puts `data` at `path` of the run's files, as MLflow's client does on a server (the
    artifact proxy) and as the importer does in-process."""
    if target_url is None:
        blob = reader.put_blob(io.BytesIO(data))
        reader.put_run_file(run_id, path, sha256=blob.sha256, size=blob.size)
        return
    experiment = reader.get_project(reader.get_run(run_id).project).id
    url = f"{target_url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/{path}"
    assert requests.put(url, data=data, timeout=30).ok


def filled(target_url: str | None, reader: Any) -> str:
    run = reader.create_run("files", name="with-files")
    for path, data in FILES.items():
        write(target_url, reader, run.id, path, data)
    return str(run.id)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server without auth holding one run with `FILES`; yields its URL and the run id."""
    folder = tmp_path_factory.mktemp("run-files")
    settings = Settings(store_url=f"sqlite:///{folder}/r.db", blobs=folder / "blobs")
    with running_server(settings) as url:
        from registrum.client.http import HttpStore

        store = HttpStore(url)
        try:
            yield url, filled(url, store)
        finally:
            store.close()


def api(server: tuple[str, str], suffix: str = "") -> str:
    url, run = server
    return f"{url}/api/v1/runs/{run}/files{suffix}"


# -- the routes --------------------------------------------------------------------------


def test_the_list_is_every_file_by_path_with_size_and_digest(server: tuple[str, str]) -> None:
    answer = requests.get(api(server), timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert body["next_cursor"] is None
    assert body["items"] == [
        {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for p, d in sorted(FILES.items())
    ]
    under = requests.get(api(server), params={"prefix": "model/"}, timeout=30).json()
    assert [f["path"] for f in under["items"]] == ["model/MLmodel", "model/weights.bin"]
    assert requests.get(api(server), params={"prefix": "nothing"}, timeout=30).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_the_list_is_paged_with_the_usual_cursor(server: tuple[str, str]) -> None:
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = requests.get(api(server), params=params, timeout=30).json()
        seen += [f["path"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(FILES)
    bad = requests.get(api(server), params={"cursor": "nope"}, timeout=30)
    assert bad.status_code == 400 and "next_cursor" in bad.json()["error"]["message"]


def test_a_download_streams_the_bytes_as_an_attachment(server: tuple[str, str]) -> None:
    got = requests.get(api(server, "/model/weights.bin"), timeout=30)
    assert got.status_code == 200 and got.content == WEIGHTS
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''weights.bin"
    assert got.headers["etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["x-content-type-options"] == "nosniff"
    head = requests.head(api(server, "/model/weights.bin"), timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(WEIGHTS))
    assert head.headers["etag"] == got.headers["etag"]


def test_a_range_gets_part_of_the_file(server: tuple[str, str]) -> None:
    part = requests.get(
        api(server, "/model/weights.bin"), headers={"range": "bytes=100-355"}, timeout=30
    )
    assert part.status_code == 206 and part.content == WEIGHTS[100:356]
    assert part.headers["content-range"] == f"bytes 100-355/{len(WEIGHTS)}"
    tail = requests.get(api(server, "/notes.txt"), headers={"range": "bytes=-4"}, timeout=30)
    assert tail.status_code == 206 and tail.content == b"try\n"
    past = requests.get(api(server, "/notes.txt"), headers={"range": "bytes=999-"}, timeout=30)
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(FILES['notes.txt'])}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    ("suffix", "status", "code"),
    [
        ("/model", 404, "artifact_not_found"),  # a folder is not a file
        ("/missing.txt", 404, "artifact_not_found"),
        ("/a/%2E%2E/notes.txt", 400, "invalid_argument"),
        ("/a//b", 400, "invalid_argument"),
    ],
)
def test_a_path_holding_no_file_is_a_clear_4xx(
    server: tuple[str, str], suffix: str, status: int, code: str
) -> None:
    got = requests.get(api(server, suffix), timeout=30)
    assert (got.status_code, got.json()["error"]["code"]) == (status, code), got.text


def test_an_unknown_run_is_a_404(server: tuple[str, str]) -> None:
    url, _ = server
    for suffix in ("", "/notes.txt"):
        got = requests.get(f"{url}/api/v1/runs/{'f' * 32}/files{suffix}", timeout=30)
        assert got.status_code == 404 and got.json()["error"]["code"] == "run_not_found"


# -- the client, embedded and over HTTP ----------------------------------------------------


def test_the_client_lists_and_downloads_files_and_folders(target: Target, tmp_path: Path) -> None:
    run = filled(target.store, target.reader)
    with Client(target.store) as client:
        files = client.run_files(run)
        assert files == [
            ArtifactFile(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in sorted(FILES.items())
        ]
        assert [f.path for f in client.run_files(run, "plots")] == ["plots/loss.png"]

        one = client.download_run_files(run, tmp_path / "one", path="model/weights.bin")
        assert [p.name for p in one.iterdir()] == ["weights.bin"]
        assert (one / "weights.bin").read_bytes() == WEIGHTS

        folder = client.download_run_files(run, tmp_path / "folder", path="model/")
        assert sorted(p.name for p in folder.iterdir()) == ["MLmodel", "weights.bin"]

        everything = client.download_run_files(run, tmp_path / "all")
        for path, data in FILES.items():
            assert (everything / path).read_bytes() == data

        with pytest.raises(ArtifactNotFound, match="no file or folder 'modl'"):
            client.download_run_files(run, tmp_path / "x", path="modl")
        with pytest.raises(InvalidArgument):
            client.run_files(run, "../up")
        with pytest.raises(RunNotFound):
            client.run_files("f" * 32)


def test_the_transports_answer_one_file_alike(target: Target) -> None:
    run = filled(target.store, target.reader)
    found = target.reader.get_run_file(run, "notes.txt")
    assert found == ArtifactFile(
        "notes.txt", hashlib.sha256(FILES["notes.txt"]).hexdigest(), len(FILES["notes.txt"])
    )
    with pytest.raises(ArtifactNotFound):
        target.reader.get_run_file(run, "model")


# -- the command line ----------------------------------------------------------------------


def test_the_cli_lists_downloads_and_shows_files(
    server: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, run = server
    assert main(["runs", "files", run, "--store", url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["size", "sha256", "path"]
    assert [line.split()[-1] for line in listed[1:]] == sorted(FILES)
    assert "10.0 KiB" in listed[2] and listed[2].endswith("model/weights.bin")

    assert main(["runs", "files", run, "--prefix", "plots", "--store", url]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("plots/loss.png")
    assert main(["runs", "files", run, "--prefix", "none", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == f"run {run} has no files under 'none'"

    out = tmp_path / "got"
    assert main(["runs", "download", run, "model", "-o", str(out), "--store", url]) == 0
    assert (out / "weights.bin").read_bytes() == WEIGHTS
    assert f"to {out}" in capsys.readouterr().out
    assert main(["runs", "download", run, "nope", "-o", str(out), "--store", url]) == 1
    assert "no file or folder 'nope'" in capsys.readouterr().err

    assert main(["runs", "show", run, "--store", url]) == 0
    assert f"files: 4, 10.0 KiB (registrum runs files {run})" in capsys.readouterr().out
