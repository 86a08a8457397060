"""Reading an MLflow tracking server through its REST API only (no `mlflow` package), so the
importer works with any MLflow server, self-hosted or managed, and for users without MLflow.

Every list is read to its end through `next_page_token`; artifacts are listed one folder per
call and read as streams.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from registrum.importers._mlflow_database import MlflowDatabase
from registrum.importers._mlflow_http import MlflowCallFailed, MlflowHttp

Json = dict[str, Any]

HISTORY_PAGE = 25_000  # what MLflow's own client asks for per page of a metric's history
RUNS_PAGE = 1_000
MODELS_PAGE = 1_000


class Calls(Protocol):
    """Either end: something that runs an MLflow route."""

    def call(self, method: str, path: str, args: Mapping[str, Any]) -> Json: ...


def pages(end: Calls, method: str, path: str, args: Mapping[str, Any], key: str) -> Iterator[Json]:
    """Every item under `key` of every page of a paged MLflow list."""
    token: str | None = None
    while True:
        page = end.call(method, path, {**args, "page_token": token} if token else args)
        yield from page.get(key, [])
        following = page.get("next_page_token") or None
        if following is None:
            return
        if following == token:  # a server bug would otherwise loop here forever
            raise MlflowCallFailed("server", "INVALID_STATE", f"{path} repeated a page token", 200)
        token = following


def history(end: Calls, run_id: str, key: str) -> Iterator[Json]:
    """Every point of one metric of one run at either end, a page at a time."""
    args = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
    return pages(end, "GET", "/metrics/get-history", args, "metrics")


def _history_page(end: Calls, run_id: str, key: str, token: str | None) -> Json:
    args: Json = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
    if token:
        args["page_token"] = token
    return end.call("GET", "/metrics/get-history", args)


def histories(end: Calls, run_id: str, keys: Sequence[str], *, window: int = 4) -> Iterator[Json]:
    """Every point of each of `keys`, key after key, as `history` gives them; up to `window`
    keys are read at once (a server with several workers answers them in parallel), each a
    page ahead at most, so memory holds about `window + 1` pages."""
    if len(keys) < 2 or window < 2:
        for key in keys:
            yield from history(end, run_id, key)
        return
    pool = ThreadPoolExecutor(window, thread_name_prefix="registrum-history")
    upcoming = iter(keys)
    heads: deque[tuple[str, Future[Json]]] = deque()

    def open_next() -> None:
        key = next(upcoming, None)
        if key is not None:
            heads.append((key, pool.submit(_history_page, end, run_id, key, None)))

    try:
        for _ in range(window - 1):  # one worker stays free for the current key's next page
            open_next()
        while heads:
            key, first = heads.popleft()
            open_next()
            token: str | None = None
            future: Future[Json] | None = first
            while future is not None:
                page = future.result()
                following = page.get("next_page_token") or None
                if following is not None and following == token:
                    raise MlflowCallFailed(
                        "server", "INVALID_STATE", "metrics/get-history repeated a page token", 200
                    )
                token = following
                future = pool.submit(_history_page, end, run_id, key, token) if token else None
                yield from page.get("metrics", [])
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def quoted(value: str) -> str:
    """`value` as a string literal of MLflow's filter grammar."""
    return f'"{value}"' if "'" in value else f"'{value}'"


class MlflowSource:
    """The MLflow server an import reads from; metric histories from its database instead
    when the import is given it (`MlflowDatabase`)."""

    def __init__(self, http: MlflowHttp, database: MlflowDatabase | None = None) -> None:
        self.http = http
        self.database = database

    @property
    def url(self) -> str:
        return self.http.url

    def experiments(self, view_type: str = "ACTIVE_ONLY") -> list[Json]:
        """Every experiment of `view_type` (ACTIVE_ONLY or DELETED_ONLY)."""
        args = {"max_results": 1000, "view_type": view_type}
        return list(pages(self.http, "POST", "/experiments/search", args, "experiments"))

    def runs(self, experiment_id: str, view_type: str = "ACTIVE_ONLY") -> list[Json]:
        """Every run of an experiment, with its params, tags, latest metrics and outputs."""
        args: Json = {"experiment_ids": [experiment_id], "run_view_type": view_type}
        args["max_results"] = RUNS_PAGE
        return list(pages(self.http, "POST", "/runs/search", args, "runs"))

    def history(self, run_id: str, key: str) -> Iterator[Json]:
        """Every point of one metric of one run, in the server's order, read a page at a
        time: `{key, value, timestamp, step}` with the value as sent (NaN and ±inf as
        strings)."""
        if self.database is not None:
            return self.database.history(run_id, key)
        return history(self.http, run_id, key)

    def histories(self, run_id: str, keys: Sequence[str], *, window: int) -> Iterator[Json]:
        """Every point of each of `keys`, key after key (see `histories`)."""
        if self.database is not None:
            self.database.check(run_id, keys)
            return itertools.chain.from_iterable(self.database.history(run_id, k) for k in keys)
        return histories(self.http, run_id, keys, window=window)

    def artifact_files(self, root: str) -> Iterator[tuple[str, int]]:
        """Every file under the artifact folder `root` (see `walk_artifacts`)."""
        return walk_artifacts(self.http.list_artifacts, root)

    def logged_models(self, experiment_id: str) -> list[Json]:
        """The logged models (MLflow 3) of an experiment; none on a server without them."""
        args = {"experiment_ids": [experiment_id], "max_results": 100}
        try:
            found = list(pages(self.http, "POST", "/logged-models/search", args, "models"))
        except MlflowCallFailed as exc:
            if exc.error_code == "ENDPOINT_NOT_FOUND":  # MLflow 2 has no logged models
                return []
            raise
        return found

    def registered_models(self) -> list[Json]:
        args = {"max_results": MODELS_PAGE}
        return list(pages(self.http, "GET", "/registered-models/search", args, "registered_models"))

    def model_versions(self, name: str) -> list[Json]:
        """Every version of the registered model `name`, oldest first."""
        args = {"filter": f"name={quoted(name)}", "max_results": 10_000}
        found = list(pages(self.http, "GET", "/model-versions/search", args, "model_versions"))
        return sorted(found, key=lambda v: int(v["version"]))


def walk_artifacts(
    list_artifacts: Callable[[str], Iterable[Json]], root: str
) -> Iterator[tuple[str, int]]:
    """Every file under the artifact folder `root` of a store that `list_artifacts` lists one
    level of (MLflow's artifact listing), as (path relative to `root`, size), depth first."""
    stack = [""]
    while stack:
        folder = stack.pop()
        for entry in list_artifacts(f"{root}/{folder}".rstrip("/")):
            name = f"{folder}/{entry['path']}" if folder else str(entry["path"])
            if entry.get("is_dir"):
                stack.append(name)
            else:
                yield name, int(entry.get("file_size") or 0)
