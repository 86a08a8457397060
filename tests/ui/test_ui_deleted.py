"""Deleted things leave the web UI: a deleted project is not listed, a deleted run is not in
its project's table nor in its run count, and both come back when restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser import open_page, start_run, tracking


def _projects(page: Any) -> dict[str, str]:
    rows: list[list[str]] = page.eval_on_selector_all(
        "table#projects tbody tr",
        "rows => rows.map(r => [r.dataset.project, r.innerText])",
    )
    return dict((name, text) for name, text in rows)


def _runs(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "table#runs tbody tr", "rows => rows.map(r => r.dataset.runId)"
    )
    return ids


def test_deleted_projects_and_runs_leave_the_pages(
    ui_server: Any, page: Any, tmp_path: Path
) -> None:
    server = ui_server()
    with tracking(tmp_path / "home"):
        kept = [start_run(server.url, "kept", f"r-{i}") for i in range(3)]
        for run in kept:
            run.finish()
        doomed = start_run(server.url, "doomed", "d")
        doomed.finish()
    client = server.client()
    client.delete_run(kept[0].id)
    client.delete_project("doomed")

    open_page(page, f"{server.url}/#/")
    listed = _projects(page)
    assert list(listed) == ["kept"] and "\t2\t" in listed["kept"]
    open_page(page, f"{server.url}/#/projects/kept")
    assert sorted(_runs(page)) == sorted(r.id for r in kept[1:])

    client.restore_run(kept[0].id)
    client.restore_project("doomed")
    client.close()
    open_page(page, f"{server.url}/#/")
    assert sorted(_projects(page)) == ["doomed", "kept"]
    open_page(page, f"{server.url}/#/projects/kept")
    assert sorted(_runs(page)) == sorted(r.id for r in kept)
