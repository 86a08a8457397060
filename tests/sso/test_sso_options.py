"""`registrum server`'s single sign-on options: a set that cannot work stops the server
before it starts, with one line naming the option; the client secret never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from registrum.cli import main
from registrum.server.oidc import OidcSettings


def server(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["server", "--store", "sqlite:///:memory:", *args])
    return code, capsys.readouterr().err


ISSUER = ["--oidc-issuer", "https://sso.example.com/realms/acme"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*ISSUER, "--oidc-client-id", "registrum"], "--oidc-issuer needs --auth"),
        (["--auth", *ISSUER], "--oidc-issuer and --oidc-client-id go together"),
        (
            ["--auth", "--oidc-issuer", "http://sso.example.com", "--oidc-client-id", "r"],
            "must be an https:// URL",
        ),
        (
            ["--auth", *ISSUER, "--oidc-client-id", "r", "--oidc-scopes", "profile email"],
            "must include openid",
        ),
        (["--auth", "--oidc-role-map", "roles.yaml"], "--oidc-role-map needs --oidc-issuer"),
        (
            ["--auth", "--trust-issuer", "https://token.actions.githubusercontent.com"],
            "--trust-issuer, --trust-subject and --as go together",
        ),
        (
            ["--trust-issuer", "https://ci.example.com", "--trust-subject", "x", "--as", "bot"],
            "--trust-issuer needs --auth",
        ),
    ],
)
def test_options_that_cannot_work(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = server(args, capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vision-team: [editor]", "group 'vision-team' must map to server-admin"),
        ("vision-team: {vision: owner}", "gives 'owner' on 'vision'"),
        ("vision-team: {vision: editor", "is not valid YAML"),
        ("- a\n- b", "must map group names to roles"),
    ],
)
def test_a_bad_role_map_stops_the_server(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roles = tmp_path / "roles.yaml"
    roles.write_text(text)
    args = ["--auth", *ISSUER, "--oidc-client-id", "r", "--oidc-role-map", str(roles)]
    code, err = server(args, capsys)
    assert code == 2 and message in err
    missing = ["--auth", *ISSUER, "--oidc-client-id", "r", "--oidc-role-map", "nowhere.yaml"]
    code, err = server(missing, capsys)
    assert code == 2 and "cannot read the role map nowhere.yaml" in err


def test_the_client_secret_is_kept_out_of_reprs() -> None:
    settings = OidcSettings(issuer=ISSUER[1], client_id="r", client_secret="very-secret")
    assert "very-secret" not in repr(settings)
