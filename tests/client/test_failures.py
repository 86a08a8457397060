"""Failures are never silent: what a training script prints when tracking cannot deliver, and
what `registrum sync` and the read-only commands say, run as a user runs them."""

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import polling
import registrum
from registrum.client.http import HttpStore
from registrum.client.settings import ClientSettings
from registrum.errors import InvalidArgument
from serving import ADMIN_TOKEN, auth_server, free_port, server_process

TRAIN = """
import logging, sys, time, registrum
if sys.argv[2] == "app-logging":
    logging.basicConfig(stream=sys.stdout, format="APP %(levelname)s %(message)s")
run = registrum.init(project="p", config={"lr": 0.1}, store=sys.argv[1])
for i in range(20_000):
    run.log({"x": float(i)}, step=i)
    if i % 5000 == 0:
        time.sleep(0.8)  # several batches and retries while the store is down
began = time.monotonic()
run.finish()
print("run", run.id, "finish took", round(time.monotonic() - began, 2), flush=True)
"""


def env_for(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    return {**env, "REGISTRUM_HOME": str(home), **more}


def train(
    tmp_path: Path, store: str, env: dict[str, str], how: str = "plain"
) -> tuple[subprocess.CompletedProcess[str], str, float]:
    """Runs TRAIN; returns the process, the run id and how long `finish` took."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    out = subprocess.run(
        [sys.executable, str(script), store, how],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr  # tracking never breaks the training script
    line = next(x for x in out.stdout.splitlines() if x.startswith("run ")).split()
    return out, line[1], float(line[-1])


def cli(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith("registrum:")]


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    """Waits while the store cannot answer yet, too (a server still starting)."""
    return polling.wait_for(check, what, timeout, ignoring=(registrum.RegistrumError,))


# -- the store is down --------------------------------------------------------------------


def test_with_the_server_down_the_script_says_so_once_and_finish_returns_at_once(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    port = free_port()
    store = f"http://127.0.0.1:{port}"
    out, run_id, took = train(tmp_path, store, env_for(home, REGISTRUM_INIT_TIMEOUT="0.5"))
    said = lines(out.stderr)
    assert len(said) == 2, out.stderr  # the first failure, and finish: no line per batch
    first, last = said
    assert f"cannot reach the store at {store}" in first and "Connection refused" in first
    assert str(home / "spool" / run_id) in first
    assert f"run {run_id} is not fully delivered: the store is unreachable" in last
    assert f"REGISTRUM_HOME={home} registrum sync" in last
    # 60 s of REGISTRUM_FLUSH_TIMEOUT by default; the data is safe in the spool, so no wait.
    assert took < 5, took
    with server_process(tmp_path / "srv", port=port) as server:
        done = cli(["sync"], env_for(home))
        assert done.returncode == 0, done.stderr
        assert f"run {run_id}" in done.stdout and "done" in done.stdout
        with closing(HttpStore(server.root)) as reader:
            stored = reader.get_run(run_id)
            assert stored.status == "finished" and stored.metrics["x"].count == 20_000


def test_an_application_that_configured_logging_gets_the_lines_on_its_handler(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    store = f"http://127.0.0.1:{free_port()}"
    out, _, _ = train(
        tmp_path, store, env_for(home, REGISTRUM_INIT_TIMEOUT="0.5"), how="app-logging"
    )
    assert not lines(out.stderr), out.stderr  # not printed a second time on stderr
    mine = [x for x in out.stdout.splitlines() if x.startswith("APP WARNING registrum:")]
    assert len(mine) == 2, out.stdout
    assert "cannot reach the store" in mine[0] and "not fully delivered" in mine[1]


def test_a_later_init_delivers_what_an_earlier_process_left_in_the_spool(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    port = free_port()
    store = f"http://127.0.0.1:{port}"
    env = env_for(home, REGISTRUM_INIT_TIMEOUT="0.5")
    _, left, _ = train(tmp_path, store, env)
    # Bound to another store URL (the same server by another name): this process's token is
    # for its own store only, so that spool waits for `registrum sync`.
    _, elsewhere, _ = train(tmp_path, f"http://localhost:{port}", env)
    with server_process(tmp_path / "srv", port=port) as server:
        # A new run in a new process, same REGISTRUM_HOME, nobody runs `registrum sync`.
        out, newer, _ = train(tmp_path, store, env)
        assert not lines(out.stderr), out.stderr
        with closing(HttpStore(server.root)) as reader:
            stored = wait_for(
                lambda: (r := reader.get_run(left)).metrics.get("x") and r, "the delivery"
            )
            wait_for(lambda: reader.get_run(left).metrics["x"].count == 20_000, "all points")
            assert reader.get_run(left).status == "finished"
            assert stored.params == {"lr": 0.1}
            assert reader.get_run(newer).status == "finished"
            with pytest.raises(registrum.RunNotFound):
                reader.get_run(elsewhere)
    wait_for(lambda: not (home / "spool" / left).exists(), "the spool's removal")
    assert (home / "spool" / elsewhere).exists()


# -- the store refuses --------------------------------------------------------------------


def test_a_wrong_token_names_the_problem_and_retry_rejected_delivers_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with auth_server(tmp_path / "srv", ("viewer",)) as (url, admin, tokens):
        admin.create_project("p")
        admin.add_member("p", "viewer", "viewer")
        out, bad, took = train(tmp_path, url, env_for(home, REGISTRUM_TOKEN="rgm_wrong"))
        said = lines(out.stderr)
        assert len(said) == 2, out.stderr
        assert f"the store refused run {bad}'s data: Unauthorized:" in said[0]
        assert "the API token is not valid" in said[0]  # the server's own message
        assert "registrum sync --retry-rejected" in said[0]
        assert "registrum sync --retry-rejected" in said[1] and took < 5

        out, denied, _ = train(tmp_path, url, env_for(home, REGISTRUM_TOKEN=tokens["viewer"]))
        [first, _] = lines(out.stderr)
        assert "Forbidden:" in first and "editor" in first, first

        # Refused is not done: `registrum sync` says so and fails while it stays refused.
        again = cli(["sync"], env_for(home, REGISTRUM_TOKEN=tokens["viewer"]))
        assert again.returncode == 1
        assert f"run {bad}: 0 event(s) delivered" in again.stdout and "rejected" in again.stdout
        assert "done" not in again.stdout
        assert "the store refused them: Unauthorized" in again.stderr
        assert "registrum sync --retry-rejected" in again.stderr

        fixed = cli(["sync", "--retry-rejected"], env_for(home, REGISTRUM_TOKEN=ADMIN_TOKEN))
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert fixed.stdout.count("done") == 2
        for run_id in (bad, denied):
            stored = admin.get_run(run_id)
            assert stored.status == "finished" and stored.metrics["x"].count == 20_000
        assert "nothing to sync" in cli(["sync"], env_for(home)).stdout


def test_sync_to_another_store_with_retry_rejected(tmp_path: Path) -> None:
    """A run sent to a server that refused it is delivered to the store named by --store."""
    home = tmp_path / "home"
    with auth_server(tmp_path / "srv", ()) as (url, _, _):
        _, run_id, _ = train(tmp_path, url, env_for(home))
    target = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    done = cli(["sync", "--retry-rejected", "--store", target], env_for(home))
    assert done.returncode == 0, done.stderr
    stored = cli(["runs", "show", run_id, "--store", target], env_for(home))
    assert "finished" in stored.stdout
    assert any(line.split()[:1] == ["x"] for line in stored.stdout.splitlines())


# -- programmer errors at the call ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("htp://localhost:8765", "did you mean http://?"),
        ("htps://localhost:8765", "did you mean https://?"),
        ("localhost:8765", "is not a URL"),
        ("http://", "is not a server URL"),
        ("mysql://u:secret@h/db", "unknown scheme mysql://"),
        ("postgresql+asyncpg://u@h/db", 'pip install "registrum[postgres]"'),
    ],
)
def test_init_refuses_a_store_url_it_cannot_use(
    url: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    with pytest.raises(InvalidArgument, match="store") as caught:
        registrum.init(project="p", store=url)
    assert says in str(caught.value)
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "home" / "spool").exists()  # nothing was spooled for it
    monkeypatch.setenv("REGISTRUM_URL", url)
    with pytest.raises(InvalidArgument):
        registrum.init(project="p")


def test_a_missing_postgres_driver_names_the_extra(tmp_path: Path) -> None:
    script = "import sys; sys.modules['psycopg'] = None\nimport registrum\n"
    script += "registrum.init(project='p', store='postgresql://u@127.0.0.1/db')\n"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "InvalidArgument" in out.stderr
    assert 'driver (psycopg) is not installed: pip install "registrum[postgres]"' in out.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_without_a_driver_name_are_accepted(
    scheme: str, postgres: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    with postgres.database() as url:
        plain = f"{scheme}://{url.split('://', 1)[1]}"
        assert ClientSettings.from_env(store=plain).store == url
        with registrum.init(project="p", store=plain) as run:
            run.log({"x": 1.0})
        with registrum.Client(plain) as client:
            assert client.run(run.id).metrics["x"].count == 1


# -- commands that only read ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "p"],
        ["runs", "show", "0" * 32],
        ["models", "list"],
        ["models", "show", "m"],
        ["lineage", "m@1"],
        ["models", "evals", "m"],
        ["runs", "code", "0" * 32],
        ["datasets", "list", "p", "d"],
        ["datasets", "diff", "p", "d", "1", "2"],
        ["audit", "list"],
        ["audit", "verify"],
        ["webhooks", "list"],
        ["policy", "show", "m"],
        ["requests", "list", "m"],
        ["models", "aliases-history", "m"],
    ],
)
def test_a_read_only_command_creates_no_store(args: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = cli(args, env_for(home))
    assert out.returncode == 1
    assert f"there is no store yet at {home / 'registrum.db'}" in out.stderr
    assert not home.exists()
    db = tmp_path / "none" / "r.db"
    out = cli([*args, "--store", f"sqlite:///{db}"], env_for(home))
    assert out.returncode == 1 and "there is no store yet" in out.stderr
    assert not db.parent.exists() and not home.exists()
