"""pytest plugin: MLflow's own REST test modules, run against Registrum (`make mlflow-compat`).

MLflow's `tests/tracking/test_rest_tracking.py` and `tests/tracking/test_model_registry.py`
start an MLflow server per test through `tests.tracking.integration_test_utils`:
`_init_server(backend_uri, root_artifact_uri, ...)` (a context manager yielding the URL) or
`ServerThread(app, port)` (the same, serving MLflow's ASGI app in a thread). This plugin
replaces both before the test modules import them (`-p registrum_compat` loads it before
collection), so every test talks to a fresh `registrum` server on a loopback port with a
fresh SQLite store, and MLflow's server never starts. Nothing in MLflow's files is edited.

It is also the minimal stand-in for MLflow's `tests/conftest.py` (run with `--noconftest`:
MLflow's conftest pulls in its whole test tree): the client's retries are off, so a wrong
answer fails in seconds instead of after four minutes of backoff; the tracking URI of the
fluent API starts each test at a local file of its own; active runs are ended after each test.

Deselected (with the reason, listed in the terminal summary):
* the tests named in `deselected.txt` (one `file.py::test_name  reason` a line);
* the `file` parametrization of the backend fixture: Registrum has one kind of store, and
  the `sqlalchemy` case runs the same test against it.

`--registrum-compat-baseline` runs the same selection against MLflow's own server: it tells
a test that fails because the test module and the installed client are from different MLflow
releases from a test that fails because of Registrum.
"""

from __future__ import annotations

import importlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DESELECT_FILE = Path(__file__).with_name("deselected.txt")
UTILS_MODULE = "tests.tracking.integration_test_utils"
# The fixtures that MLflow's test modules parametrize by backend ("file", "sqlalchemy").
BACKEND_FIXTURES = ("mlflow_client", "client")
FILE_BACKEND_REASON = (
    "the file-store case of the backend fixture: Registrum has one kind of store, which "
    "the sqlalchemy case of the same test exercises"
)
# Server internals that some MLflow test modules import at top level and that a given
# installed mlflow may not have (they move between releases). A test module must still
# import, so a missing one becomes a stand-in that fails when called; every test that uses
# one is in deselected.txt.
SERVER_INTERNALS = {"mlflow.server.handlers": ("_get_sampled_steps_from_steps",)}
# Environment of every test: no retries and a short timeout (a 5xx is retried for minutes
# otherwise), no usage reports, no telemetry calls from the client.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


@dataclass
class Deselection:
    """What this run left out, and why (shown in the terminal summary)."""

    by_list: dict[str, list[str]] = field(default_factory=dict)  # reason -> node ids
    file_backend: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # entries naming no collected test


_STATE = Deselection()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("registrum-compat", "MLflow's REST tests against Registrum")
    group.addoption(
        "--registrum-compat-baseline",
        action="store_true",
        help="run the same tests against MLflow's own server: which ones fail because "
        "the MLflow test tree and the installed client differ, not because of Registrum",
    )
    group.addoption(
        "--registrum-compat-deselect",
        default=str(DESELECT_FILE),
        help="the deselect list: one 'file.py::test_name  reason' a line (default: %(default)s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "allow_infer_pip_requirements_fallback: MLflow's marker (model logging may infer "
        "pip requirements by fallback)",
        "notrackingurimock: MLflow's marker (keep the default tracking URI)",
    ):
        config.addinivalue_line("markers", line)
    os.environ.update(CLIENT_ENV)
    # Registrum stores sign their audit chain with a key kept in this folder, never in ~.
    os.environ.setdefault("REGISTRUM_AUDIT_DIR", tempfile.mkdtemp(prefix="registrum-audit-"))
    _stand_in_missing_internals()
    utils = importlib.import_module(UTILS_MODULE)
    if config.getoption("registrum_compat_baseline"):
        if not hasattr(utils, "ServerThread"):
            _replace(utils, ServerThread=ServerThread)
        return
    _replace(utils, _init_server=_init_server, ServerThread=RegistrumServerThread)
    # The registry module's fixture prepares MLflow's own stores for the app it serves;
    # Registrum serves instead, so MLflow's database is not made (its migrations take seconds).
    handlers = importlib.import_module("mlflow.server.handlers")
    _replace(handlers, initialize_backend_stores=_no_mlflow_stores)


def _replace(module: ModuleType, **names: Any) -> None:
    """Sets module attributes (names the module may not declare, so not by assignment)."""
    for name, value in names.items():
        setattr(module, name, value)


def _stand_in_missing_internals() -> None:
    for module_name, names in SERVER_INTERNALS.items():
        module = importlib.import_module(module_name)
        for name in names:
            if not hasattr(module, name):
                setattr(module, name, _missing(f"{module_name}.{name}"))


def _missing(qualified: str) -> Callable[..., Any]:
    def stand_in(*_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{qualified} is not in the installed mlflow; the test using it is "
            "one of MLflow's server-internal tests (deselect it)"
        )

    return stand_in


def _no_mlflow_stores(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for `mlflow.server.handlers.initialize_backend_stores`."""


# --- A fresh Registrum server per test -----------------------------------------------------


@contextmanager
def _serve_asgi(app: Any) -> Iterator[str]:
    """Serves an ASGI app with uvicorn in a thread on 127.0.0.1:<free port>; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see its log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def registrum_server() -> Iterator[str]:
    """A `registrum` server on a fresh SQLite store and blob folder; yields its URL."""
    from registrum.server import Settings, create_app

    with tempfile.TemporaryDirectory(prefix="registrum-compat-") as folder:
        settings = Settings(
            store_url=f"sqlite:///{folder}/registrum.db",
            blobs=Path(folder) / "blobs",
            webhook_senders=0,
        )
        with _serve_asgi(create_app(settings)) as url:
            yield url


@contextmanager
def _init_server(*_args: Any, **_kwargs: Any) -> Iterator[str]:
    """Stands in for MLflow's `_init_server(backend_uri, root_artifact_uri, ...)`.

    MLflow's store settings (backend URI, artifact root, extra environment) are MLflow's
    own server's; Registrum keeps its store and blobs in a fresh temporary folder.
    """
    import mlflow

    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: back to the default
    with registrum_server() as url:
        yield url


class RegistrumServerThread:
    """Stands in for MLflow's `ServerThread(app, port)`: serves Registrum, not `app`."""

    def __init__(self, app: Any, port: int) -> None:
        self._stack = ExitStack()

    def __enter__(self) -> str:
        return self._stack.enter_context(registrum_server())

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class ServerThread:
    """MLflow's `ServerThread(app, port)` for `--registrum-compat-baseline`, where the test
    tree is older than the module that defines it: serves MLflow's `app` in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        self._app = app
        self._stack = ExitStack()

    def __enter__(self) -> str:
        return self._stack.enter_context(_serve_asgi(self._app))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


# --- MLflow's conftest, the little these modules need ---------------------------------------


@pytest.fixture(autouse=True)
def _mlflow_test_isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What MLflow's conftest does around each test: the fluent API's default tracking URI
    is a file of the test's own; runs left active and URIs set by the test are reset."""
    import mlflow
    from mlflow.tracking import fluent

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: back to the default
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    fluent._active_experiment_id = None


# --- Deselection ------------------------------------------------------------------------------


def read_deselect_list(path: Path) -> dict[str, str]:
    """`file.py::test_name  reason` lines (blank lines and `#` comments skipped)."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, reason = line.partition(" ")
        if "::" not in key or not reason.strip():
            raise pytest.UsageError(
                f"{path}:{number}: expected 'file.py::test_name  reason', got {raw!r}"
            )
        entries[key] = reason.strip()
    return entries


def _list_key(item: pytest.Item) -> str:
    function = getattr(item, "originalname", item.name)
    return f"{item.path.name}::{function}"


def _is_file_backend(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return any(callspec.params.get(name) == "file" for name in BACKEND_FIXTURES)


@pytest.hookimpl(tryfirst=True)  # before -k, so that a listed test counts as found
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed = read_deselect_list(Path(config.getoption("registrum_compat_deselect")))
    seen: set[str] = set()
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        key = _list_key(item)
        if key in listed:
            seen.add(key)
        if _is_file_backend(item):
            _STATE.file_backend.append(item.nodeid)
            dropped.append(item)
        elif key in listed:
            _STATE.by_list.setdefault(listed[key], []).append(item.nodeid)
            dropped.append(item)
        else:
            kept.append(item)
    _STATE.unmatched = sorted(set(listed) - seen)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("registrum-compat")
    stats = terminalreporter.stats
    counts = {k: len(stats.get(k, [])) for k in ("passed", "failed", "error", "skipped")}
    listed = sum(len(ids) for ids in _STATE.by_list.values())
    baseline = config.getoption("registrum_compat_baseline")
    server = "MLflow's own (baseline)" if baseline else "Registrum"
    write(
        f"server: {server}; passed {counts['passed']}, failed {counts['failed']}, "
        f"errors {counts['error']}, skipped {counts['skipped']}; deselected {listed} by "
        f"the list and {len(_STATE.file_backend)} file-store cases"
    )
    for reason, ids in sorted(_STATE.by_list.items()):
        write(f"  deselected ({len(ids)}): {reason}")
    if _STATE.file_backend:
        write(f"  deselected ({len(_STATE.file_backend)}): {FILE_BACKEND_REASON}")
    for key in _STATE.unmatched:
        write(f"  listed but not collected (renamed or gone in this MLflow tree?): {key}")
