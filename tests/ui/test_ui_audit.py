"""The audit log in a real browser, over a server holding changes made through the client:
events listed newest first, filters that narrow them, details, paging and the chain check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pytest
from browser import open_page, start_run, tracking, wait_ready

RUNS_A = 20  # each run adds several events (created, metrics, finished): over one page in all


@dataclass
class World:
    url: str
    runs: dict[str, list[str]] = field(default_factory=dict)  # project -> run ids
    events: list[dict[str, Any]] = field(default_factory=list)  # what /audit lists, newest first


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = ui_server()
    world = World(server.url)
    with tracking(tmp_path_factory.mktemp("audit-home")):
        for project, count in (("alpha", RUNS_A), ("beta", 2)):
            for i in range(count):
                run = start_run(server.url, project, f"{project}-{i}", config={"i": i})
                run.log({"loss": 1.0 / (i + 1)}, step=1)
                run.finish("failed" if i == 1 else "finished")
                world.runs.setdefault(project, []).append(run.id)
        # Governance among the tracking: a registration and an alias move.
        run = start_run(server.url, "alpha", "registers")
        weights = tmp_path_factory.mktemp("weights") / "w.bin"
        weights.write_bytes(b"weights")
        run.register_model("clf", path=weights, aliases=["champion"])
        run.finish()
    with closing(server.client()) as client:
        world.events = client.list_audit()
    yield world


def listed(page: Any) -> list[int]:
    ids: list[str] = page.eval_on_selector_all(
        "table#audit tbody tr[data-event-id]", "rows => rows.map(r => r.dataset.eventId)"
    )
    return [int(i) for i in ids]


def filter_by(page: Any, **values: str) -> None:
    for name, value in values.items():
        page.fill(f"#audit-{name}", value)
    page.click("#apply-filters")
    wait_ready(page)


def test_audit_log_lists_events_newest_first_a_page_at_a_time(world: World, page: Any) -> None:
    assert len(world.events) > 50
    open_page(page, f"{world.url}/#/audit?all=1")
    newest = [e["id"] for e in world.events]
    assert listed(page) == newest[:50]
    assert page.inner_text("#page-label").startswith("Events 1–50")
    page.click("#next")
    wait_ready(page)
    assert listed(page) == newest[50:100]
    page.reload()
    wait_ready(page)
    assert listed(page) == newest[50:100]
    page.click("#prev")
    wait_ready(page)
    assert listed(page) == newest[:50]


def test_filters_narrow_the_events(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/audit?all=1")
    filter_by(page, project="beta")
    expected = [e["id"] for e in world.events if e["project"] == "beta"]
    assert expected and listed(page) == expected
    filter_by(page, action="run.finished")
    expected = [
        e["id"] for e in world.events if e["project"] == "beta" and e["action"] == "run.finished"
    ]
    assert len(expected) == 2 and listed(page) == expected
    assert "project=beta" in page.url and "action=run.finished" in page.url
    # The entity links to the run's page.
    run = world.runs["beta"][1]
    assert page.get_attribute(f"td.entity a[href='#/runs/{run}']", "href") == f"#/runs/{run}"
    filter_by(page, project="", action="", entity_type="run", entity_id=world.runs["alpha"][0])
    expected = [e["id"] for e in world.events if e["entity_id"] == world.runs["alpha"][0]]
    assert listed(page) == expected
    filter_by(page, entity_type="", entity_id="", since="2999-01-01T00:00")
    assert listed(page) == []
    assert page.inner_text("#audit-empty") == "No audit events match these filters."
    page.click("#clear-filters")
    wait_ready(page)
    assert len(listed(page)) == 50


def test_clicking_an_action_filters_by_it_and_details_open(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/audit?all=1")
    finished = page.locator("table#audit tr[data-action='run.finished']").first
    finished.get_by_role("button", name="Details").click()
    shown = page.locator("table#audit tr.audit-more:not([hidden])")
    assert shown.count() == 1
    text = shown.inner_text()
    assert '"status": "finished"' in text or '"status": "failed"' in text
    assert "hash" in text
    finished.get_by_role("button", name="run.finished").click()
    wait_ready(page)
    assert page.input_value("#audit-action") == "run.finished"
    expected = [e["id"] for e in world.events if e["action"] == "run.finished"]
    assert listed(page) == expected


def test_verify_chain(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/audit")
    page.click("#verify")
    page.wait_for_selector("#verify-result .ok")
    assert "Chain intact" in page.inner_text("#verify-result")


def test_governance_events_by_default_every_event_on_request(world: World, page: Any) -> None:
    open_page(page, f"{world.url}/#/audit")
    assert page.is_checked("#audit-governance")
    shown = {e["id"]: e["action"] for e in world.events if e["id"] in set(listed(page))}
    assert set(shown.values()) >= {"model_version.created", "alias.moved", "project.created"}
    assert not set(shown.values()) & {"metrics.logged", "blob.stored", "run.params_logged"}
    noisy = [e for e in world.events if e["action"] in ("metrics.logged", "blob.stored")]
    assert noisy and len(listed(page)) < 50
    page.uncheck("#audit-governance")
    wait_ready(page)
    assert "all=1" in page.url and len(listed(page)) == 50
    page.check("#audit-governance")
    wait_ready(page)
    assert "all=1" not in page.url
    filter_by(page, action="metrics.logged")  # an action asked for by name is shown
    assert listed(page) == [e["id"] for e in world.events if e["action"] == "metrics.logged"][:50]
