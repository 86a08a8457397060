import hashlib
import io
from typing import Any

import pytest

from registrum.errors import InvalidArgument


def blob(store: Any, data: bytes) -> dict[str, Any]:
    store.put_blob(io.BytesIO(data))
    return {"path": "f.bin", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def pages(list_all: Any, size: int) -> list[Any]:
    """Walks a list a page of `size` at a time, as a caller would."""
    out: list[Any] = []
    offset = 0
    while True:
        page = list_all(limit=size, offset=offset)
        out.extend(page)
        if len(page) < size:
            return out
        offset += size


def test_every_list_pages_without_gaps_or_repeats(store: Any) -> None:
    run = store.create_run("p")
    for i in range(7):
        store.create_project(f"q{i}")
        store.register_model_version(f"m{i}", project="p", files=[blob(store, b"x%d" % i)])
        store.register_model_version("many", run_id=run.id, files=[blob(store, b"v%d" % i)])
        store.create_artifact("p", f"a{i}", type="data", files=[blob(store, b"a%d" % i)])
        store.log_dataset("p", "d", fingerprint=f"fingerprint{i}")

    listings = {
        "projects": store.list_projects,
        "models": store.list_models,
        "versions": lambda **kw: store.list_model_versions("many", **kw),
        "artifacts": lambda **kw: store.list_artifacts("p", **kw),
        "datasets": lambda **kw: store.list_datasets("p", **kw),
    }
    for what, list_all in listings.items():
        whole = [x.id for x in list_all()]
        assert len(whole) >= 7, what
        for size in (1, 3, 7, 100):
            assert [x.id for x in pages(list_all, size)] == whole, (what, size)
        assert [x.id for x in list_all(limit=2, offset=3)] == whole[3:5], what
        assert list_all(limit=5, offset=len(whole)) == [], what


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (-1, 0), (1, -1), ("2", 0), (1.5, 0)])
def test_bad_page_arguments(store: Any, limit: Any, offset: Any) -> None:
    store.create_project("p")
    with pytest.raises(InvalidArgument):
        store.list_projects(limit=limit, offset=offset)
