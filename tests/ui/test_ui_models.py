"""The model pages in a real browser, on a server with access control: the models list, a
model's versions, aliases and evaluation charts, and promotion requests that a reviewer
approves or rejects while viewers and requesters are offered no approve button."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import open_page, tracking, wait_ready

import registrum

MODEL = "digits-clf"
PROJECT = "vision"
SERIES_BLUE = (0x2F, 0x5B, 0xD3)  # minichart.js draws the first series in #2f5bd3
ACCURACY = {1: 0.81, 2: 0.88, 3: 0.86}
LOSS = {1: 0.52, 2: 0.31, 3: 0.35}


@dataclass
class World:
    url: str
    tokens: dict[str, str]
    runs: dict[str, str] = field(default_factory=dict)

    def client(self, user: str) -> Any:
        from registrum.client.http import HttpStore

        return HttpStore(self.url, token=self.tokens[user])

    def request(self, user: str, version: int, comment: str | None = None) -> dict[str, Any]:
        with closing(self.client(user)) as store:
            opened: dict[str, Any] = store.request_promotion(
                MODEL, "production", version, comment=comment
            )
            return opened


@pytest.fixture(scope="module")
def world(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Project `vision` with an editor, two reviewers and a viewer; model `digits-clf` with
    three versions trained by runs on two dataset versions, each evaluated on a test set;
    `production` on v1, protected by a policy that reviewers approve."""
    server = ui_server(auth=True)
    tmp = tmp_path_factory.mktemp("models-world")
    with closing(server.client()) as admin:
        tokens = {"admin": server.admin_token}
        admin.create_project(PROJECT, description="image classifiers")
        for name, role in (
            ("editor", "editor"),
            ("reviewer", "reviewer"),
            ("reviewer2", "reviewer"),
            ("viewer", "viewer"),
        ):
            admin.create_user(name)
            tokens[name] = admin.create_token(user=name).token
            admin.add_member(PROJECT, name, role)
    world = World(server.url, tokens)
    with tracking(tmp / "home", tokens["editor"]):
        build(world, tmp)
    with closing(server.client()) as admin:
        admin.set_policy(MODEL, protected=["production"], approver_role="reviewer")
    yield world


def build(world: World, tmp: Path) -> None:
    train = np.arange(200, dtype=np.float64).reshape(100, 2)
    test = np.ones((20, 2))
    weights = tmp / "weights.bin"

    def start(name: str, job_type: str) -> registrum.Run:
        return registrum.init(
            project=PROJECT, name=name, job_type=job_type, store=world.url, capture_code=False
        )

    for n in (1, 2, 3):
        with start(f"train-{n}", "train") as run:
            run.use_dataset(train if n < 3 else train[:90], name="digits-train", role="train")
            run.log({"loss": 1.0 / n}, step=1)
            weights.write_bytes(f"weights {n}".encode())
            run.register_model(
                MODEL,
                path=weights,
                metrics={"val_acc": ACCURACY[n] - 0.01},
                aliases=["production"] if n == 1 else [],
                tags={"stage": "candidate"},
            )
        world.runs[f"train-{n}"] = run.id
    for n in (1, 2, 3):
        with start(f"eval-{n}", "evaluation") as run:
            run.use_model(f"{MODEL}@{n}")
            run.use_dataset(test, name="digits-test", role="test")
            run.log({"test_acc": ACCURACY[n], "test_loss": LOSS[n]})
        world.runs[f"eval-{n}"] = run.id


def signed_in(page: Any, world: World, user: str) -> Any:
    page.add_init_script(
        f"localStorage.setItem('registrum.token', {json.dumps(world.tokens[user])})"
    )
    return page


def open_model(page: Any, world: World) -> Any:
    open_page(page, f"{world.url}/#/models/{MODEL}")
    page.wait_for_selector("table.versions")
    return page


def card(page: Any, request: dict[str, Any]) -> Any:
    return page.locator(f".card.request[data-request-id='{request['id']}']")


def test_models_list_shows_the_model(world: World, page: Any) -> None:
    signed_in(page, world, "viewer")
    open_page(page, f"{world.url}/#/models")
    row = page.locator("table.models tbody tr", has_text=MODEL)
    assert row.count() == 1
    text = row.inner_text()
    assert PROJECT in text and "v3" in text and "production: v1" in text
    row.get_by_role("link", name=MODEL).click()
    page.wait_for_url(f"**/#/models/{MODEL}")
    wait_ready(page)
    assert page.locator("h1").inner_text().endswith(MODEL)


def test_models_list_empty_state(world: World, page: Any) -> None:
    with closing(world.client("admin")) as admin:
        admin.create_project("empty-project")
    signed_in(page, world, "admin")
    open_page(page, f"{world.url}/#/models?project=empty-project")
    assert "has no registered models yet" in page.inner_text("#models")


def test_model_page_shows_versions_aliases_and_lineage_links(world: World, page: Any) -> None:
    signed_in(page, world, "viewer")
    open_model(page, world)
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).inner_text()  # newest first
    assert first.startswith("v3") and world.runs["train-3"][:8] in first and "stage" in first
    run_link = rows.nth(2).locator(f"a[href='#/runs/{world.runs['train-1']}']")
    assert run_link.count() == 1
    lineage = rows.nth(1).locator("a.lineage").get_attribute("href")
    assert lineage == "#/lineage?node=model%3Adigits-clf%2F2"
    aliases = page.locator("table.aliases tbody tr", has_text="production").inner_text()
    assert "v1" in aliases and "yes" in aliases  # protected by the policy


def test_evaluation_charts_draw_the_store_s_evaluations(world: World, page: Any) -> None:
    with closing(world.client("viewer")) as store:
        history = store.evaluations(MODEL)
    expected: dict[tuple[str, str], list[list[Any]]] = {}
    for cell in history["evaluations"]:
        expected.setdefault((cell["dataset"], cell["metric"]), []).append(
            [cell["version"], cell["value"]]
        )
    assert len(expected) == 2  # test_acc and test_loss on digits-test v1
    signed_in(page, world, "viewer")
    open_model(page, world)
    charts = page.locator(".eval-chart")
    assert charts.count() == len(expected)
    for (dataset, metric), points in expected.items():
        chart = page.locator(f".eval-chart[data-metric='{metric}'][data-dataset='{dataset}']")
        received = chart.evaluate("el => el.series")
        assert received == [{"label": metric, "points": points}]
        assert json.loads(chart.get_attribute("data-points")) == received
        wanted = ACCURACY if metric == "test_acc" else LOSS
        assert {v: x for v, x in points} == wanted
        assert series_pixels(chart) > 100, f"the {metric} chart drew no line"


def series_pixels(chart: Any) -> int:
    """How many pixels of the chart's canvas have the first series' colour."""
    r, g, b = SERIES_BLUE
    return int(
        chart.evaluate(
            """(el, [r, g, b]) => {
                const c = el.querySelector("canvas");
                const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                const near = (x, y) => Math.abs(x - y) < 24;
                let n = 0;
                for (let i = 0; i < data.length; i += 4) {
                    const [pr, pg, pb, pa] = data.slice(i, i + 4);
                    if (pa > 200 && near(pr, r) && near(pg, g) && near(pb, b)) n += 1;
                }
                return n;
            }""",
            [r, g, b],
        )
    )


def test_reviewer_approves_and_the_alias_moves(world: World, page: Any) -> None:
    request = world.request("editor", 2, comment="better on the test set")
    signed_in(page, world, "reviewer")
    open_model(page, world)
    mine = card(page, request)
    assert "open" in mine.inner_text() and "editor" in mine.inner_text()
    mine.locator("button.reject").wait_for()  # both decisions are offered
    mine.locator("button.approve").click()
    page.wait_for_selector(".notice")
    wait_ready(page)
    assert "production now points at v2" in page.inner_text(".notice")
    with closing(world.client("viewer")) as store:
        assert store.get_model_version(f"{MODEL}@production").version == 2
        decided = store.get_request(request["id"])
    assert (decided["state"], decided["decided_by"]) == ("approved", "reviewer")
    aliases = page.locator("table.aliases tbody tr", has_text="production").inner_text()
    assert "v2" in aliases
    assert "approved" in card(page, request).inner_text()
    assert card(page, request).locator("button.approve").count() == 0
    moved = page.locator("table.alias-history tbody tr").first.inner_text()
    assert "v1" in moved and "v2" in moved and f"#{request['id']}" in moved


def test_viewer_sees_the_request_but_no_approve_or_reject(world: World, page: Any) -> None:
    request = world.request("editor", 3)
    signed_in(page, world, "viewer")
    open_model(page, world)
    mine = card(page, request)
    assert "open" in mine.inner_text()
    assert page.locator("button.approve").count() == 0
    assert page.locator("button.reject").count() == 0
    assert "Approving needs reviewer" in mine.inner_text()


def test_the_requester_is_not_offered_to_approve_their_own_request(world: World, page: Any) -> None:
    own = world.request("reviewer2", 3, comment="mine")
    other = world.request("editor", 3, comment="theirs")
    signed_in(page, world, "reviewer2")
    open_model(page, world)
    assert card(page, own).locator("button.approve").count() == 0
    assert "You opened this request" in card(page, own).inner_text()
    assert card(page, own).locator("button.cancel").count() == 1  # but may cancel it
    assert card(page, other).locator("button.approve").count() == 1


def test_reviewer_rejects_with_a_reason(world: World, page: Any) -> None:
    request = world.request("editor", 3, comment="try v3")
    with closing(world.client("viewer")) as store:
        before = store.get_model_version(f"{MODEL}@production").version
    signed_in(page, world, "reviewer")
    open_model(page, world)
    mine = card(page, request)
    mine.locator("button.reject").click()
    mine.locator("input.reason").fill("worse on the test set")
    mine.locator("button.confirm-reject").click()
    page.wait_for_selector(".notice")
    wait_ready(page)
    assert f"Request #{request['id']} rejected" in page.inner_text(".notice")
    with closing(world.client("viewer")) as store:
        decided = store.get_request(request["id"])
        assert store.get_model_version(f"{MODEL}@production").version == before
    assert decided["state"] == "rejected"
    assert decided["decision_comment"] == "worse on the test set"
    text = card(page, request).inner_text()
    assert "rejected" in text and "worse on the test set" in text


def test_a_new_model_shows_empty_states_and_an_unknown_one_an_error(
    world: World, page: Any
) -> None:
    with closing(world.client("editor")) as store:
        blob = store.put_blob(io.BytesIO(b"lonely weights"))
        files = [{"path": "w.bin", "sha256": blob.sha256, "size": blob.size}]
        store.register_model_version("lonely", project=PROJECT, files=files)
    signed_in(page, world, "editor")
    open_page(page, f"{world.url}/#/models/lonely")
    text = page.inner_text("main")
    for empty in (
        "No aliases yet.",
        "No alias is protected",
        "No promotion requests yet.",
        "No evaluations yet",
        "No alias has moved yet.",
    ):
        assert empty in text
    assert page.locator("table.versions tbody tr").count() == 1
    open_page(page, f"{world.url}/#/models/no-such-model")
    assert "model 'no-such-model' does not exist" in page.inner_text("main .error")
    page.console_errors[:] = [e for e in page.console_errors if "404" not in e]


def test_approve_is_offered_only_when_it_can_succeed_and_a_failed_click_keeps_it(
    world: World, page: Any
) -> None:
    with closing(world.client("viewer")) as store:
        current = store.get_model_version(f"{MODEL}@production").version
    others = [n for n in (1, 2, 3) if n != current]  # the winner is never v3: the version
    stale = world.request("editor", others[1], comment="will go stale")  # page asks for it
    winner = world.request("editor", others[0], comment="wins")
    with closing(world.client("reviewer2")) as store:
        store.approve_request(winner["id"])  # production moves: the first request is stale
    doomed = world.request("editor", current, comment="cancelled meanwhile")
    with closing(world.client("admin")) as admin:  # a gate no version passes
        admin.set_policy(
            MODEL,
            protected=["production"],
            approver_role="reviewer",
            gates=[{"type": "tags", "tags": {"qa": "passed"}}],
        )
    try:
        gated = world.request("editor", current, comment="no qa yet")
        signed_in(page, world, "reviewer")
        open_model(page, world)
        old = card(page, stale)
        assert old.get_attribute("data-state") == "stale"
        assert old.locator("button.approve").count() == 0
        blocked = card(page, gated)
        assert blocked.locator("button.approve").is_disabled()
        assert "A gate fails" in blocked.inner_text()
        with closing(world.client("editor")) as store:
            store.cancel_request(doomed["id"])  # after the page was drawn
        gone = card(page, doomed)
        gone.locator("button.reject").click()
        gone.locator("input.reason").fill("no")
        gone.locator("button.confirm-reject").click()
        gone.locator(".decision-status .error").wait_for()
        assert "already cancelled" in gone.inner_text()
        assert gone.locator("button.approve").count() == 1  # still offered, with the reason
        assert gone.locator("button.confirm-reject").is_enabled()
        page.console_errors[:] = [e for e in page.console_errors if "409" not in e]
    finally:
        with closing(world.client("admin")) as admin:
            admin.set_policy(MODEL, protected=["production"], approver_role="reviewer")


# -- the version page ----------------------------------------------------------------------


def open_version(page: Any, world: World, version: int) -> Any:
    open_page(page, f"{world.url}/#/models/{MODEL}/versions/{version}")
    page.wait_for_selector(".version-header")
    return page


def test_the_version_page_shows_how_to_load_it_and_what_it_is(
    world: World, page: Any, tmp_path: Path
) -> None:
    signed_in(page, world, "viewer")
    open_model(page, world)
    page.locator("table.versions a.version-link", has_text="v1").click()
    page.wait_for_url(f"**/#/models/{MODEL}/versions/1")
    wait_ready(page)
    assert page.locator("h1").inner_text().endswith(f"{MODEL} / v1")
    snippets = page.inner_text("section:has(h2:text('Load it'))")
    assert f'registrum.load_model("{MODEL}@1")' in snippets
    assert f"registrum serve {MODEL}@1" in snippets
    assert "val_acc" in page.inner_text("table.version-metrics")
    assert "digits-train" in page.inner_text("table.version-datasets")
    evaluations = page.inner_text("table.version-evaluations")
    assert "test_acc" in evaluations and "0.81" in evaluations
    assert world.runs["train-1"][:8] in page.inner_text(".version-header")
    assert "No signature" in page.inner_text("section:has(h2:text('Signature'))")
    with page.expect_download() as info:
        page.click("table.version-files button.download[data-path='weights.bin']")
    info.value.save_as(tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == b"weights 1"
    assert page.locator("section:has(h2:text('Change it'))").count() == 0  # a viewer
    assert "null" not in page.inner_text("main#page")


def test_an_editor_changes_description_tags_and_aliases_in_place(world: World, page: Any) -> None:
    signed_in(page, world, "editor")
    open_version(page, world, 3)

    def done(text: str) -> None:
        page.locator(".notice", has_text=text).wait_for()
        wait_ready(page)

    page.fill("#version-description", "trained on fewer rows")
    page.click("#save-version-description")
    done("Description saved.")
    assert "trained on fewer rows" in page.inner_text(".version-header")
    page.fill("#version-tag-key", "reviewed")
    page.fill("#version-tag-value", "yes")
    page.click("#set-version-tag")
    done("Tag reviewed set.")
    page.fill("#alias-name", "staging")
    page.click("#move-alias")
    done("@staging now points at v3.")
    assert "staging" in page.inner_text(".version-header")
    page.fill("#alias-name", "production")  # protected: a request, not a move
    page.click("#move-alias")
    done("@production is protected: a promotion request was opened")
    page.click("button.remove-alias[data-alias='staging']")
    done("@staging removed.")
    page.fill("#alias-name", "9lives")  # the server's refusal, in place
    page.click("#move-alias")
    page.wait_for_selector("#version-status .error")
    assert "alias '9lives' is not valid" in page.inner_text("#version-status")
    assert page.locator("#move-alias").is_enabled()  # the button is back for another try
    page.console_errors[:] = [e for e in page.console_errors if "9lives" not in e]
    with closing(world.client("viewer")) as store:
        version = store.get_model_version(f"{MODEL}@3")
        assert version.description == "trained on fewer rows"
        assert version.tags["reviewed"] == "yes" and "staging" not in version.aliases
        opened = store.list_requests(MODEL, state="open")
    assert any(r["version"] == 3 and r["comment"] == "from the version page" for r in opened)
    assert page.locator("#delete-version").count() == 0  # deleting needs a project admin


def test_an_admin_deletes_and_restores_a_version(world: World, page: Any) -> None:
    with closing(world.client("admin")) as admin:
        blob = admin.put_blob(io.BytesIO(b"weights 4"))
        made = admin.register_model_version(
            MODEL, project=PROJECT, files=[{"path": "w.bin", "sha256": blob.sha256, "size": 9}]
        )
    signed_in(page, world, "admin")
    open_version(page, world, 3)  # an open request names v3: refused, said in place
    page.click("#delete-version")
    page.wait_for_selector("#version-status .error")
    assert "request" in page.inner_text("#version-status")
    page.console_errors[:] = [e for e in page.console_errors if "409" not in e]
    open_version(page, world, made.version)
    page.click("#delete-version")
    page.wait_for_selector(".notice")
    wait_ready(page)
    assert "deleted" in page.inner_text(".version-header")
    page.click("#restore-version")
    page.wait_for_selector(".notice")
    wait_ready(page)
    assert f"v{made.version} restored." in page.inner_text(".notice")
    # The lineage of a deleted version answers 404 (read beside the version, not after it).
    page.console_errors[:] = [e for e in page.console_errors if "/lineage" not in e]
    with closing(world.client("viewer")) as store:
        assert store.get_model_version(f"{MODEL}@{made.version}").deleted_at is None


def test_the_audit_log_is_offered_to_those_who_may_read_it(world: World, page: Any) -> None:
    signed_in(page, world, "viewer")
    open_model(page, world)
    assert page.locator("a[data-nav='audit']").is_hidden()
    open_page(page, f"{world.url}/#/audit")  # typed by hand: the server's refusal, no stray text
    assert "needs a server admin or a project admin" in page.inner_text("#audit-message")
    assert "null" not in page.inner_text("main#page")
    page.console_errors[:] = [e for e in page.console_errors if "403" not in e]


def test_an_admin_is_offered_the_audit_log(world: World, page: Any) -> None:
    signed_in(page, world, "admin")
    open_model(page, world)
    assert page.locator("a[data-nav='audit']").is_visible()
    assert page.locator("#delete-model").count() == 1  # a project admin may delete the model


def test_an_editor_describes_and_tags_the_model(world: World, page: Any) -> None:
    signed_in(page, world, "editor")
    open_model(page, world)
    page.fill("#model-description", "digit classifiers for the scanner")
    page.click("#save-model-description")
    page.locator(".notice", has_text="Description saved.").wait_for()
    wait_ready(page)
    page.fill("#model-tag-key", "owner")
    page.fill("#model-tag-value", "vision-team")
    page.click("#set-model-tag")
    page.locator(".notice", has_text="Tag owner set.").wait_for()
    wait_ready(page)
    assert "digit classifiers for the scanner" in page.inner_text("main#page")
    page.click("button.remove-model-tag[data-tag='owner']")
    page.locator(".notice", has_text="Tag owner removed.").wait_for()
    with closing(world.client("viewer")) as store:
        model = store.get_model(MODEL)
    assert model.description == "digit classifiers for the scanner" and "owner" not in model.tags
    assert page.locator("#delete-model").count() == 0  # deleting needs a project admin
