"""The governance records are the same over both transports: the embedded store and an
`HttpStore` reading one database answer equal records, and the wire keeps its JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests

from registrum.client.http import HttpStore
from registrum.entities import (
    AliasMove,
    AuditEvent,
    Delivery,
    Policy,
    PromotionRequest,
    Vote,
    Webhook,
)
from registrum.errors import InvalidArgument
from registrum.server import Settings
from registrum.store import Store, open_store
from serving import running_server

MODEL = b"abc"


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[Store, HttpStore, str]]:
    """One SQLite database, seen in-process and through a server with no delivery worker
    (so deliveries change only when the test says)."""
    url = f"sqlite:///{tmp_path}/db.sqlite"
    settings = Settings(
        store_url=url, blobs=tmp_path / "blobs", allow_private_webhooks=True, webhook_senders=0
    )
    with running_server(settings) as api, closing(HttpStore(api)) as http:
        embedded = open_store(url, blobs=tmp_path / "blobs")
        embedded.allow_private_webhooks = True
        try:
            yield embedded, http, api
        finally:
            embedded.close()


def test_webhooks_and_deliveries_are_equal_records_over_both_transports(
    both: tuple[Store, HttpStore, str],
) -> None:
    embedded, http, api = both
    http.create_project("p")
    created = http.create_webhook(
        "http://127.0.0.1:9/hook", ["run.finished"], project="p", secret="s" * 20
    )
    assert isinstance(created, Webhook) and created.secret == "s" * 20
    # Read back, over either transport, the hook is the same record without its secret.
    assert embedded.get_webhook(created.id) == http.get_webhook(created.id)
    assert http.get_webhook(created.id) == dataclasses.replace(created, secret=None)
    assert embedded.list_webhooks(project="p") == http.list_webhooks(project="p")
    # The wire is the dict the record was: the secret key only in the creating answer.
    body = requests.get(f"{api}/api/v1/webhooks/{created.id}", timeout=10).json()
    assert body == embedded.get_webhook(created.id).to_dict()
    assert "secret" not in body and body["events"] == ["run.finished"]

    run = http.create_run("p", name="r")
    http.finish_run(run.id)
    due = embedded.dispatch_webhooks()
    assert [d.webhook_id for d in due] == [created.id]
    embedded.record_delivery(due[0].id, status_code=502)
    deliveries = http.list_deliveries(created.id)
    assert deliveries == embedded.list_deliveries(created.id)
    assert len(deliveries) == 1 and isinstance(deliveries[0], Delivery)
    assert deliveries[0].status == "pending" and deliveries[0].last_status == 502
    # Records still read like the dicts they replaced.
    assert deliveries[0]["attempts"] == deliveries[0].attempts == 1
    page = requests.get(f"{api}/api/v1/webhooks/{created.id}/deliveries", timeout=10).json()
    assert page["items"] == [d.to_dict() for d in deliveries]


def test_finish_run_and_webhook_ids_follow_one_rule_on_both_transports(
    both: tuple[Store, HttpStore, str],
) -> None:
    embedded, http, _ = both
    http.create_project("p")
    run = http.create_run("p", name="r")
    for transport in (embedded, http):
        with pytest.raises(InvalidArgument, match="finish_run needs a terminal status"):
            transport.finish_run(run.id, "running")
        for bad in ("", "a/b", "x" * 65, "../users"):
            with pytest.raises(InvalidArgument, match="is not valid: use the id create returned"):
                transport.get_webhook(bad)
    assert http.get_run(run.id).status == "running"


def test_approvals_and_audit_are_equal_records_over_both_transports(
    both: tuple[Store, HttpStore, str],
) -> None:
    embedded, http, api = both
    http.create_project("p")
    run = http.create_run("p", name="r")
    blob = http.put_blob(iter([MODEL]))
    files = [{"path": "model.pkl", "sha256": blob.sha256, "size": blob.size}]
    for _ in range(2):
        http.register_model_version("m", project="p", run_id=run.id, files=files)
    http.set_alias("m", "champion", 1)
    policy = http.set_policy(
        "m",
        protected=["champion"],
        approvals_needed=2,
        allow_self_approval=True,
        gates=[{"type": "tags", "tags": ["validated"]}],
    )
    assert isinstance(policy, Policy) and policy == embedded.get_policy("m")
    opened = http.request_promotion("m", "champion", 2, comment="better")
    voted = http.approve_request(opened.id, comment="ok")
    assert isinstance(voted, PromotionRequest) and voted.state == "open"
    assert voted.votes == [
        Vote(voter=voted.requested_by, decision="approve", comment="ok", at=voted.votes[0].at)
    ]
    assert voted.gates[0]["passed"] is False
    assert http.get_request(opened.id) == embedded.get_request(opened.id)
    assert http.list_requests("m") == embedded.list_requests("m")
    cancelled = embedded.cancel_request(opened.id)
    assert cancelled == http.get_request(opened.id) and cancelled.state == "cancelled"
    moves = http.alias_history("m")
    assert moves == embedded.alias_history("m") and isinstance(moves[0], AliasMove)
    assert moves[0].to_version == 1 and moves[0].request_id is None
    events = http.list_audit(project="p")
    assert events == embedded.list_audit(project="p") and isinstance(events[0], AuditEvent)
    assert events[0].action == "approval.decided" and events[0]["entity_id"] == str(opened.id)
    # Each route answers the record's dict, as before the records.
    body = requests.get(f"{api}/api/v1/requests/{opened.id}", timeout=10).json()
    assert body == cancelled.to_dict() and body["votes"][0]["comment"] == "ok"
    page = requests.get(f"{api}/api/v1/audit", params={"project": "p"}, timeout=10).json()
    assert page["items"] == [e.to_dict() for e in events]


def _declared(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    """The JSON schema the OpenAPI `document` declares for an answer, its components beside
    it so that its references resolve."""
    answer = document["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_governance_answers_match_the_records_the_openapi_declares(
    both: tuple[Store, HttpStore, str],
) -> None:
    embedded, http, api = both
    http.create_project("p")
    run = http.create_run("p", name="r")
    blob = http.put_blob(iter([MODEL]))
    files = [{"path": "model.pkl", "sha256": blob.sha256, "size": blob.size}]
    for _ in range(2):
        http.register_model_version("m", project="p", run_id=run.id, files=files)
    http.set_alias("m", "champion", 1)
    http.create_webhook("http://127.0.0.1:9/hook", ["run.finished"], project="p")
    http.finish_run(run.id)
    embedded.dispatch_webhooks()
    http.set_policy("m", protected=["champion"], allow_self_approval=True)
    document = requests.get(f"{api}/api/v1/openapi.json", timeout=10).json()
    hook = http.list_webhooks(project="p")[0]
    opened = http.request_promotion("m", "champion", 2)
    answers = [
        ("/api/v1/models/{name}/policy", "/models/m/policy", "get_policy"),
        ("/api/v1/requests/{request_id}", f"/requests/{opened.id}", "PromotionRequest"),
        ("/api/v1/models/{name}/requests", "/models/m/requests", "page"),
        ("/api/v1/models/{name}/aliases/history", "/models/m/aliases/history", "page"),
        ("/api/v1/webhooks", "/webhooks?project=p", "page"),
        ("/api/v1/webhooks/{webhook_id}", f"/webhooks/{hook.id}", "Webhook"),
        ("/api/v1/webhooks/{webhook_id}/deliveries", f"/webhooks/{hook.id}/deliveries", "page"),
        ("/api/v1/audit", "/audit?project=p", "page"),
        ("/api/v1/lineage", "/lineage?node=model:m/1", "LineageGraph"),
        ("/api/v1/models/{name}/evaluations", "/models/m/evaluations", "EvaluationHistory"),
    ]
    for template, path, what in answers:
        body = requests.get(f"{api}/api/v1{path}", timeout=10).json()
        schema = _declared(document, template, "get", "200")
        assert "$ref" in schema or "items" in schema.get("properties", {}), template
        if what == "page":
            assert body["items"], f"{path} answered no items to check"
        jsonschema_rs.validate(schema, body)  # raises naming the field that differs
    # A record the document declares fails on an answer that lacks one of its fields.
    body = requests.get(f"{api}/api/v1/requests/{opened.id}", timeout=10).json()
    del body["votes"]
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(
            _declared(document, "/api/v1/requests/{request_id}", "get", "200"), body
        )
