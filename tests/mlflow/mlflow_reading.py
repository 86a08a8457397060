"""Reading back what an MLflow client wrote, through Registrum's own store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def runs_of(server: Any, project: str) -> Iterator[tuple[Any, list[Any]]]:
    """The store behind `server`, opened in-process, and the runs of `project`."""
    store = server.reader()
    try:
        yield store, list(store.search_runs(project, limit=1000).items)
    finally:
        store.close()
