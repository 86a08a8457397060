"""Names that look alike: stored in Unicode NFC, so one name typed two ways is one name, and
refused with the character named when they hold invisible or direction-control characters."""

from __future__ import annotations

import io
import unicodedata
from typing import Any

import pytest
import requests

import registrum
from registrum import validation as v
from registrum.errors import InvalidArgument, InvalidName
from serving import ADMIN_TOKEN, auth_server
from targets import Target

COMPOSED = "caf\u00e9"  # é as one code point
DECOMPOSED = "cafe\u0301"  # e, then a combining acute accent
assert unicodedata.normalize("NFC", DECOMPOSED) == COMPOSED != DECOMPOSED

# One of each kind the rule refuses, with the name the message gives it.
HIDDEN = [
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u202a", "U+202A LEFT-TO-RIGHT EMBEDDING"),
    ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
    ("\u200f", "U+200F RIGHT-TO-LEFT MARK"),
    ("\u061c", "U+061C ARABIC LETTER MARK"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"),
    ("\u200d", "U+200D ZERO WIDTH JOINER"),
    ("\u2060", "U+2060 WORD JOINER"),
    ("\u2064", "U+2064 INVISIBLE PLUS"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("\u00ad", "U+00AD SOFT HYPHEN"),
    ("\u180e", "U+180E MONGOLIAN VOWEL SEPARATOR"),
    ("\ufe0f", "U+FE0F VARIATION SELECTOR-16"),
    ("\U000e0101", "U+E0101 VARIATION SELECTOR-18"),
    ("\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A"),
    ("\U000e0001", "U+E0001 LANGUAGE TAG"),
    ("\u3164", "U+3164 HANGUL FILLER"),
    ("\u2028", "U+2028 LINE SEPARATOR"),
    ("\u2029", "U+2029 PARAGRAPH SEPARATOR"),
    ("\ue000", "U+E000 (a private-use character)"),
    ("\U0010ffff", "U+10FFFF (an unassigned code point)"),
    ("\x85", "U+0085 (a control character)"),
    ("\x07", "U+0007 (a control character)"),
]


@pytest.mark.parametrize(("char", "label"), HIDDEN, ids=[h[1].split()[0] for h in HIDDEN])
def test_the_rule_names_the_character_and_where_it_is(char: str, label: str) -> None:
    with pytest.raises(InvalidName) as caught:
        v.name(f"ab{char}cd", "project name")
    assert str(caught.value) == (
        f"project name contains {label} at position 3; names may not contain invisible or "
        "direction-control characters: type the name without it"
    )


def test_names_are_returned_in_nfc_and_keys_as_given() -> None:
    assert v.name(DECOMPOSED, "model name") == COMPOSED
    assert v.name("Ω", "model name") == "Ω"  # U+2126 OHM SIGN: NFC makes it U+03A9
    assert v.name("abc", "model name") == "abc"
    assert v.key("loss/\u200b", "metric key") == "loss/\u200b"  # keys are matched as logged
    assert v.name("日本語-модель-😀", "model name") == "日本語-модель-😀"  # visible is fine


def test_one_name_typed_two_ways_is_one_entity(store: Any) -> None:
    project = store.create_project(DECOMPOSED)
    assert project.name == COMPOSED
    assert store.get_project(COMPOSED).id == project.id
    run = store.create_run(COMPOSED, name="r")
    assert store.get_run(run.id).project == COMPOSED
    assert [p.name for p in store.list_projects()] == [COMPOSED]

    data = b"weights"
    sha = store.put_blob(io.BytesIO(data)).sha256
    files = [{"path": "m.bin", "sha256": sha, "size": len(data)}]
    version = store.register_model_version(f"mod{DECOMPOSED}", run_id=run.id, files=files)
    assert version.model == f"mod{COMPOSED}"
    assert store.get_model(f"mod{COMPOSED}").name == f"mod{COMPOSED}"
    assert store.get_model_version(f"mod{DECOMPOSED}@1").version == 1

    store.log_dataset(DECOMPOSED, f"data-{DECOMPOSED}", fingerprint="f" * 16)
    assert store.get_dataset(COMPOSED, f"data-{COMPOSED}").version == 1
    store.create_artifact(COMPOSED, f"art-{DECOMPOSED}", type="data", files=files)
    assert store.get_artifact(DECOMPOSED, f"art-{COMPOSED}").name == f"art-{COMPOSED}"

    user = store.create_user(f"user-{DECOMPOSED}")
    assert user.name == f"user-{COMPOSED}"
    member = store.add_member(DECOMPOSED, f"user-{COMPOSED}", "viewer")
    assert (member.project, member.user) == (COMPOSED, f"user-{COMPOSED}")


def test_hidden_characters_are_refused_and_nothing_is_made(store: Any) -> None:
    for make, what in (
        (lambda n: store.create_project(n), "project name"),
        (lambda n: store.create_run(n), "project name"),
        (lambda n: store.create_model(n, project="p"), "model name"),
        (lambda n: store.log_dataset("p", n, fingerprint="f" * 16), "dataset name"),
        (lambda n: store.create_user(n), "user name"),
    ):
        with pytest.raises(InvalidName, match=f"^{what} contains U\\+202E RIGHT-TO-LEFT OVERRIDE"):
            make("ad\u202emin")
    assert store.list_projects() == []
    assert [u.name for u in store.list_users()] in ([], ["admin"], ["local"])
    with pytest.raises(InvalidName):  # nor can one be looked up
        store.get_project("ad\u202emin")


def test_the_server_answers_400_naming_the_character(tmp_path: Any) -> None:
    with auth_server(tmp_path, ()) as (url, admin, _):
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        for path, body in (
            ("/api/v1/projects", {"name": "pay\u200broll"}),
            ("/api/v1/runs", {"project": "pay\u200broll"}),
            ("/api/v1/users", {"name": "pay\u200broll"}),
        ):
            answer = requests.post(url + path, json=body, headers=headers, timeout=10)
            assert answer.status_code == 400, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_name"
            assert "contains U+200B ZERO WIDTH SPACE at position 4" in error["message"]
        assert admin.list_projects() == []
        assert [u.name for u in admin.list_users()] == ["admin"]
        made = requests.post(
            url + "/api/v1/projects", json={"name": DECOMPOSED}, headers=headers, timeout=10
        )
        assert made.status_code == 201 and made.json()["name"] == COMPOSED
        assert admin.get_project(COMPOSED).name == COMPOSED


def test_the_client_refuses_at_the_call(target: Target) -> None:
    with pytest.raises(InvalidArgument, match="U\\+202E RIGHT-TO-LEFT OVERRIDE at position 4"):
        registrum.init(project="pay\u202eroll", store=target.store)
    client = registrum.Client(store=target.store)
    with pytest.raises(InvalidArgument, match="U\\+200D ZERO WIDTH JOINER"):
        client.runs("pay\u200droll")
    run = registrum.init(project=DECOMPOSED, store=target.store)
    run.finish()
    assert target.reader.get_run(run.id).project == COMPOSED
    assert [r.id for r in client.runs(COMPOSED)] == [run.id]
