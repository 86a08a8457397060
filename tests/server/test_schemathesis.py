"""Schemathesis over the server's own OpenAPI document: a real server on loopback with
access control on, on SQLite and on PostgreSQL, every operation fuzzed with a fixed seed.
No answer may be a server error, and every answer must be one the document declares: its
status, content type, headers and body schema, and a 405 names the allowed methods.

Bounded (a fixed number of examples per operation) so that both databases together take a
few minutes on a small machine; the coverage phase adds the boundary cases each schema
implies (huge integers, empty and odd strings, wrong types, unlisted methods).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis

from backends import POSTGRES, backend_params
from registrum.client.http import HttpStore
from registrum.server import Settings, create_app
from serving import ADMIN_TOKEN, serve_app

pytestmark = pytest.mark.slow

SEED = 20261206
EXAMPLES = 15
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
]


@dataclass
class Served:
    url: str
    token: str
    token_id: int
    user: str
    session: requests.Session


@pytest.fixture(scope="module", params=backend_params(["sqlite", "postgres"]))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A server with auth on, and a server admin of its own for the fuzzer (so that the
    bootstrap admin's token is one more thing the fuzzer may revoke)."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="registrum-st-")))
        if request.param == "sqlite":
            store_url = f"sqlite:///{folder}/db.sqlite"
        else:
            store_url = stack.enter_context(POSTGRES.database(migrated=True))
        settings = Settings(
            store_url=store_url,
            blobs=folder / "blobs",
            auth=True,
            admin_token=ADMIN_TOKEN,
            webhook_senders=0,
        )
        url = stack.enter_context(serve_app(create_app(settings)))
        with closing(HttpStore(url, token=ADMIN_TOKEN)) as admin:
            admin.create_user("fuzzer", server_admin=True)
            made = admin.create_token(user="fuzzer")
        assert made.token is not None
        session = stack.enter_context(requests.Session())
        yield Served(url, made.token, made.id, "fuzzer", session)


def _schema() -> Any:
    """The document the server serves, loaded once at collection: building an app opens
    no store, so this needs no server."""
    document = create_app(Settings(store_url="sqlite:///unused.db", auth=True)).openapi()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.seed = SEED
    loaded.config.generation.update(max_examples=EXAMPLES)
    loaded.config.checks.update(included_check_names=CHECKS)
    return loaded


schema = _schema()


def _revokes_the_fuzzer(case: Any, served: Served) -> bool:
    """Whether `case` would take the fuzzer's own credentials away (revoke its token,
    disable its user): every later case would then only see 401s."""
    params = case.path_parameters or {}
    path = case.operation.path
    if case.method.upper() == "DELETE" and path.endswith("/tokens/{token_id}"):
        return str(params.get("token_id")) == str(served.token_id)
    if path.endswith("/users/{name}/disable"):
        return params.get("name") == served.user
    return False


@schema.parametrize()
def test_every_answer_is_declared_and_none_is_a_server_error(case: Any, served: Served) -> None:
    hypothesis.assume(not _revokes_the_fuzzer(case, served))
    response = case.call_and_validate(
        base_url=served.url,
        session=served.session,
        headers={"Authorization": f"Bearer {served.token}"},
    )
    # A refused request leaves the connection open for the next one (a server error used
    # to close it).
    assert response.headers.get("connection", "").lower() != "close", response.status_code
