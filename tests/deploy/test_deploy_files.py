"""The container files run what the tests run: `deploy/Dockerfile`'s command and health check,
and `deploy/compose.yaml`'s services, executed here as the image would execute them, on a real
PostgreSQL and a real S3 wire protocol (moto). No container daemon is needed: the image's
command line itself is started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from backends import POSTGRES
from moto_s3 import s3_bucket, s3_env  # noqa: F401 - fixtures
from polling import wait_for
from serving import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
IMAGE_PORT = "8765"


def _instruction(name: str) -> Any:
    """The JSON (exec) form of the Dockerfile's last `name` instruction, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert lines, f"the Dockerfile has no {name}"
    rest = lines[-1][len(name) :]
    if name == "HEALTHCHECK":  # options, then CMD [...]
        rest = rest.split(" CMD ", 1)[1]
    return json.loads(rest.strip())


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_image_runs_registrum_server_and_compose_keeps_its_command() -> None:
    command = _instruction("CMD")
    assert command[:2] == ["registrum", "server"]
    assert "--auth" in command  # it listens beyond loopback
    assert command[command.index("--port") + 1] == IMAGE_PORT
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER registrum$", text, re.M), "the image runs as a non-root user"
    assert "[server,postgres]" in text, "the image has the PostgreSQL and S3 drivers"
    services = _compose()["services"]
    server = services["registrum"]
    assert "command" not in server, "compose runs the image's own command"
    env = server["environment"]
    for name in (
        "REGISTRUM_URL",
        "REGISTRUM_BLOBS",
        "REGISTRUM_ADMIN_TOKEN",
        "REGISTRUM_AUDIT_KEY",
    ):
        assert name in env, name
    assert env["REGISTRUM_BLOBS"].startswith("s3://")
    assert services["upgrade"]["command"] == ["registrum", "db", "upgrade"]
    assert server["depends_on"]["upgrade"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "minio"):
        assert "healthcheck" in services[name], f"{name} has a health check"
    assert set(_compose()["volumes"]) >= {"postgres", "minio", "registrum"}


@pytest.fixture
def image_env(s3_bucket: str, tmp_path: Path) -> Iterator[dict[str, str]]:  # noqa: F811
    """The environment compose gives the server, with this machine's PostgreSQL and S3."""
    compose_env = _compose()["services"]["registrum"]["environment"]
    with POSTGRES.database() as database:
        env = {**os.environ, "REGISTRUM_HOME": str(tmp_path / "data")}
        env.update(
            REGISTRUM_URL=database,
            REGISTRUM_BLOBS=f"s3://{s3_bucket}/blobs",
            REGISTRUM_ADMIN_TOKEN="rgm_deploy-test-admin-token-0123456789",
            REGISTRUM_AUDIT_KEY="deploy-test-audit-key-0123456789abcdef",
            REGISTRUM_S3_PUBLIC_URL=os.environ["AWS_ENDPOINT_URL"],
        )
        assert set(compose_env) <= set(env), "every variable compose sets has a value here"
        yield env


def _image_command(port: int) -> list[str]:
    """The image's command, on a free port, with the `registrum` this environment runs."""
    command = _instruction("CMD")
    command[command.index("--port") + 1] = str(port)
    return [sys.executable, "-m", "registrum.cli", *command[1:]]


def test_the_image_command_serves_postgres_and_s3(
    image_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registrum

    upgrade = subprocess.run(
        [sys.executable, "-m", "registrum.cli", "db", "upgrade"],
        env=image_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    with subprocess.Popen(_image_command(port), env=image_env) as proc:
        try:
            root = f"http://127.0.0.1:{port}"
            wait_for(
                lambda: requests.get(f"{root}/api/v1/health", timeout=5).status_code == 200,
                "the image's command to serve",
                timeout=60,
                ignoring=(requests.RequestException,),
            )
            health = requests.get(f"{root}/api/v1/health", timeout=5).json()
            assert health["database"] == "postgresql"
            assert health["checks"] == {"database": "ok", "blobs": "ok"}
            check = _instruction("HEALTHCHECK")
            assert check[0] == "python"
            probe = [sys.executable, *check[1:]]
            probe[-1] = probe[-1].replace(f"127.0.0.1:{IMAGE_PORT}", f"127.0.0.1:{port}")
            assert subprocess.run(probe, timeout=30).returncode == 0

            weights = tmp_path / "weights.bin"
            weights.write_bytes(os.urandom(300_000))
            monkeypatch.setenv("REGISTRUM_TOKEN", image_env["REGISTRUM_ADMIN_TOKEN"])
            monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "client"))
            with registrum.Client(root) as client:
                run = registrum.init(project="deploy", store=root)
                run.log({"loss": 0.5}, step=1)
                run.log_artifact(weights, name="weights", type="model")
                run.finish()
                got = client.download_artifact("deploy", "weights", tmp_path / "out")
                assert (Path(got) / "weights.bin").read_bytes() == weights.read_bytes()
        finally:
            stop(proc)
