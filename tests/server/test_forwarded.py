"""Forwarded headers: without --auth, audit events name the caller's address, which an
X-Forwarded-For header may change only when a proxy named by `--forwarded-allow-ips` (uvicorn's
option: default $FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1) sent it.

`registrum server` runs as a process on 127.0.0.1; callers connect from 127.0.0.1 or from
127.0.0.2 (both loopback), so one of them can be a trusted proxy and the other not.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from serving import ServerProcess, server_process

FORGED = "198.51.100.7"


def create_project(server: ServerProcess, name: str, *, source: str, forwarded: str) -> None:
    """Creates project `name`, connecting from `source`, with `X-Forwarded-For: forwarded`."""
    port = int(server.root.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        body = json.dumps({"name": name})
        headers = {"content-type": "application/json", "x-forwarded-for": forwarded}
        conn.request("POST", "/api/v1/projects", body=body, headers=headers)
        response = conn.getresponse()
        assert response.status == 201, response.read()
    finally:
        conn.close()


def actor_of(server: ServerProcess, project: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.root.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("GET", f"/api/v1/audit?action=project.created&entity_id={project}")
        events: list[dict[str, Any]] = json.loads(conn.getresponse().read())["items"]
    finally:
        conn.close()
    [event] = events
    return str(event["actor"])


def test_only_a_trusted_proxy_may_name_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    options = ["--forwarded-allow-ips", "127.0.0.2"]
    with server_process(tmp_path / "proxied", options=options) as server:
        create_project(server, "from-untrusted", source="127.0.0.1", forwarded=FORGED)
        create_project(server, "from-proxy", source="127.0.0.2", forwarded=FORGED)
        assert actor_of(server, "from-untrusted") == "anonymous@127.0.0.1"
        assert actor_of(server, "from-proxy") == f"anonymous@{FORGED}"


def test_by_default_only_loopback_is_a_trusted_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    with server_process(tmp_path / "default") as server:
        create_project(server, "from-elsewhere", source="127.0.0.2", forwarded=FORGED)
        create_project(server, "from-local-proxy", source="127.0.0.1", forwarded=FORGED)
        assert actor_of(server, "from-elsewhere") == "anonymous@127.0.0.2"
        assert actor_of(server, "from-local-proxy") == f"anonymous@{FORGED}"


def test_the_environment_names_trusted_proxies_like_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.2")
    with server_process(tmp_path / "env") as server:
        create_project(server, "from-loopback", source="127.0.0.1", forwarded=FORGED)
        create_project(server, "from-proxy", source="127.0.0.2", forwarded=FORGED)
        assert actor_of(server, "from-loopback") == "anonymous@127.0.0.1"
        assert actor_of(server, "from-proxy") == f"anonymous@{FORGED}"
