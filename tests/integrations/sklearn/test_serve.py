"""`registrum serve`: MLflow's scoring formats, clear refusals, and an alias that moves while
a client keeps calling: the server switches by itself and no request fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from registrum_sklearn import TrackedEstimator
from sklearn.linear_model import LinearRegression

import registrum
from polling import wait_for
from registrum.serve import Served, create_app
from serving import serve_app

QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}


def _fit(store: str, slope: float) -> int:
    x = np.random.default_rng(0).normal(size=(10, 2))
    tracked = TrackedEstimator(
        LinearRegression(), project="p", register_as="lin", store=store, **QUICK
    )
    tracked.fit(x, x @ np.array([slope, 0.0]))
    with registrum.Client(store) as client:
        return client.model_versions("lin")[0].version


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    return f"sqlite:///{tmp_path}/r.db"


def test_scoring_formats_refusals_and_metrics(store: str, tmp_path: Path) -> None:
    first = _fit(store, 2.0)
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)
    served = Served("lin@production", store, poll_interval=60)
    with serve_app(create_app(served, token="s3cret", max_body_bytes=4096)) as url:
        auth = {"authorization": "Bearer s3cret"}
        call = lambda body, **kw: requests.post(  # noqa: E731
            f"{url}/invocations", json=body, headers=auth, timeout=30, **kw
        )
        expected = [2.0, 6.0]
        for body in (
            {"inputs": [[1, 0], [3, 0]]},
            {"instances": [[1, 0], [3, 0]]},
            {"dataframe_split": {"data": [[1, 0], [3, 0]]}},
        ):
            answer = call(body)
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["predictions"], expected)
        csv = requests.post(
            f"{url}/invocations",
            data=b"a,b\n1,0\n3,0\n",
            headers={**auth, "content-type": "text/csv"},
            timeout=30,
        )
        np.testing.assert_allclose(csv.json()["predictions"], expected)

        refused = call({"inputs": [[1, 2, 3]]})
        assert refused.status_code == 400
        assert "the model takes (N, 2)" in refused.json()["error"]["message"]
        assert call({"rows": []}).status_code == 400
        assert (
            requests.post(f"{url}/invocations", data=b"{", headers=auth, timeout=30).status_code
            == 400
        )
        assert call({"inputs": [[0, 0]] * 1000}).status_code == 413
        assert (
            requests.post(f"{url}/invocations", json={"inputs": [[1, 0]]}, timeout=30).status_code
            == 401
        )
        version = requests.get(f"{url}/version", timeout=30).json()
        assert (version["name"], version["version"], version["flavor"]) == ("lin", first, "sklearn")
        assert requests.get(f"{url}/ping", timeout=30).status_code == 200
        assert requests.get(f"{url}/health", timeout=30).json()["serving"] == f"lin@{first}"
        metrics = requests.get(f"{url}/metrics", timeout=30).text
        assert "registrum_serve_requests_total" in metrics
        assert f'registrum_serve_model_version{{model="lin@production"}} {first}' in metrics


def test_the_server_follows_the_alias_without_a_failed_request(store: str) -> None:
    first, second = _fit(store, 2.0), _fit(store, 5.0)
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)
    served = Served("lin@production", store, poll_interval=0.1)
    with serve_app(create_app(served)) as url:
        answers: list[tuple[int, float]] = []
        stop = threading.Event()

        def keep_calling() -> None:
            with requests.Session() as s:
                while not stop.is_set():
                    r = s.post(f"{url}/invocations", json={"inputs": [[1, 0]]}, timeout=30)
                    answers.append((r.status_code, r.json()["predictions"][0] if r.ok else -1))

        caller = threading.Thread(target=keep_calling)
        caller.start()
        try:
            wait_for(lambda: len(answers) > 5, "answers from the first version")
            with registrum.Client(store) as client:
                client.set_alias("lin", "production", second)
            wait_for(
                lambda: requests.get(f"{url}/version", timeout=30).json()["version"] == second,
                "the switch",
            )
            seen = len(answers)
            wait_for(lambda: len(answers) > seen + 5, "answers from the new version")
        finally:
            stop.set()
            caller.join()
    assert all(status == 200 for status, _ in answers), answers
    values = [round(v, 6) for _, v in answers]
    assert values[0] == 2.0 and values[-1] == 5.0
    assert values == sorted(values)  # old answers, then new ones: one switch


def test_a_version_that_fails_to_load_is_not_swapped_in(store: str, tmp_path: Path) -> None:
    first = _fit(store, 2.0)
    broken = tmp_path / "broken.skops"
    broken.write_bytes(b"not a model")
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)
    with registrum.init(project="p", store=store, **QUICK) as run:
        version = run.register_model("lin", path=broken, flavor="sklearn")
    served = Served("lin@production", store, poll_interval=60)
    served.start()
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", version.version)
    assert served.check() is False
    assert served.model is not None and served.model.version == first
    assert served.problem and f"lin@{version.version} was not swapped in" in served.problem
    assert served.check() is False  # not tried again on every poll; still said
    assert served.problem and f"lin@{version.version}" in served.problem
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)  # back: nothing to do, no problem left
    assert served.check() is False and served.problem is None
    second = _fit(store, 5.0)
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", second)
    assert served.check() is True and served.problem is None


def test_the_command_serves(store: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from serving import free_port

    first = _fit(store, 2.0)
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)
    port = free_port()
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    command = [sys.executable, "-m", "registrum.cli", "serve", "lin@production"]
    command += ["--port", str(port), "--store", store, "--token-file", str(token)]
    command += ["--workers", "2"]
    process = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: requests.get(f"{url}/ping", timeout=5).ok,
            "the server",
            timeout=60,
            ignoring=(requests.ConnectionError,),
        )
        answer = requests.post(
            f"{url}/invocations",
            json={"inputs": [[1, 0]]},
            headers={"authorization": "Bearer t0ken"},
            timeout=30,
        )
        np.testing.assert_allclose(answer.json()["predictions"], [2.0])
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert f"serving lin@{first} (lin@production) on http://127.0.0.1:{port}" in out
    missing = subprocess.run(
        [sys.executable, "-m", "registrum.cli", "serve", "nope@production", "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_signed_webhook_switches_at_once(store: str) -> None:
    from registrum.server.webhooks import sign

    first, second = _fit(store, 2.0), _fit(store, 5.0)
    with registrum.Client(store) as client:
        client.set_alias("lin", "production", first)
    served = Served("lin@production", store, poll_interval=3600)  # no poll within the test
    with serve_app(create_app(served, webhook_secret="hook-secret")) as url:
        with registrum.Client(store) as client:
            client.set_alias("lin", "production", second)
        body = b'{"action": "alias.moved"}'
        forged = requests.post(
            f"{url}/reload", data=body, headers={"x-registrum-signature": "sha256=0"}, timeout=30
        )
        assert forged.status_code == 401
        assert requests.get(f"{url}/version", timeout=30).json()["version"] == first
        signed = {"x-registrum-signature": sign("hook-secret", body)}
        answer = requests.post(f"{url}/reload", data=body, headers=signed, timeout=30)
        assert answer.json() == {"switched": True, "serving": f"lin@{second}"}
        assert requests.get(f"{url}/version", timeout=30).json()["version"] == second
    without = Served("lin@production", store, poll_interval=3600)
    with serve_app(create_app(without)) as url:
        assert requests.post(f"{url}/reload", data=b"{}", timeout=30).status_code == 404


def test_a_viewers_token_fetches_from_a_server_with_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import ADMIN_TOKEN, auth_server

    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    with auth_server(tmp_path, ("viewer",)) as (url, admin, tokens):
        admin.create_project("p")
        admin.add_member("p", "viewer", "viewer")
        monkeypatch.setenv("REGISTRUM_TOKEN", ADMIN_TOKEN)
        first = _fit(url, 2.0)
        admin.set_alias("lin", "production", first)
        monkeypatch.setenv("REGISTRUM_TOKEN", tokens["viewer"])
        served = Served("lin@production", url, poll_interval=3600)
        with serve_app(create_app(served)) as scoring:
            answer = requests.post(f"{scoring}/invocations", json={"inputs": [[1, 0]]}, timeout=30)
            np.testing.assert_allclose(answer.json()["predictions"], [2.0])
        monkeypatch.setenv("REGISTRUM_TOKEN", "rgm_not-a-token")
        with pytest.raises(registrum.RegistrumError):
            Served("lin@production", url).start()


def test_request_bodies_and_answers_keep_their_values() -> None:
    """Numbers-only rows are read as one array, rows with text column by column (text stays
    text); answers write NaN and infinities as null, and text as text."""
    from registrum.serve import parse_request, render

    numbers = parse_request(
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4]]}}',
        "application/json",
    )
    assert list(numbers.columns) == ["a", "b"] and numbers.to_numpy().tolist() == [
        [1.0, 2.5],
        [3.0, 4.0],
    ]
    mixed = parse_request(
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "10"]]}}',
        "application/json",
    )
    assert mixed["a"].tolist() == [1, 2] and mixed["b"].tolist() == ["x", "10"]
    with pytest.raises(registrum.InvalidArgument, match="one length each"):
        parse_request(b'{"dataframe_split": {"data": [[1, 2], [3]]}}', "application/json")
    assert render(np.array([1.5, np.nan, np.inf])) == b'{"predictions":[1.5,null,null]}'
    assert render(np.array([[1, 2]])) == b'{"predictions":[[1,2]]}'
    assert render(np.array(["yes", "no"])) == b'{"predictions": ["yes", "no"]}'
    assert render([0.5, float("nan")]) == b'{"predictions": [0.5, null]}'


def test_a_model_that_raises_is_a_500_naming_the_error_and_the_server_stays_up(
    store: str,
) -> None:
    from registrum.flavors import Flavor
    from registrum.model import Model

    first = _fit(store, 2.0)
    loaded = registrum.load_model(f"lin@{first}", store=store)
    calls = []

    def predict(native: Any, inputs: Any, signature: Any) -> Any:
        calls.append(len(inputs))
        if len(inputs) > 1:
            raise ZeroDivisionError("the model cannot take two rows")
        return native.predict(inputs)

    served = Served(f"lin@{first}", store, poll_interval=60)
    served.model = Model(loaded.record, loaded.native, Flavor("sklearn", lambda *_: None, predict))
    with serve_app(create_app(served)) as url:
        failed = requests.post(f"{url}/invocations", json={"inputs": [[1, 0], [3, 0]]}, timeout=30)
        assert failed.status_code == 500
        assert failed.json()["error"]["message"] == (
            f"lin@{first} raised ZeroDivisionError: the model cannot take two rows"
        )
        answered = requests.post(f"{url}/invocations", json={"inputs": [[1, 0]]}, timeout=30)
        assert answered.status_code == 200
        np.testing.assert_allclose(answered.json()["predictions"], [2.0])
        assert requests.get(f"{url}/ping", timeout=30).status_code == 200
        metrics = requests.get(f"{url}/metrics", timeout=30).text
        assert "registrum_serve_requests_total 2" in metrics
        assert "registrum_serve_errors_total 1" in metrics
    assert calls == [2, 1]
