"""The run-search filter language: parsing, precedence, literals, errors with positions."""

from __future__ import annotations

import pytest

from registrum.errors import FilterSyntaxError, InvalidArgument
from registrum.store.search.parser import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    And,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    OrderKey,
    like_parts,
    parse_filter,
    parse_order_by,
)


def show(node: Node | None) -> str:
    """A compact, fully parenthesised rendering, to assert the tree's shape."""
    if isinstance(node, Comparison):
        values = ",".join(v.text if v.kind != "string" else repr(v.text) for v in node.values)
        return f"{node.field} {node.op} {values}"
    if isinstance(node, And):
        return "(" + " AND ".join(show(i) for i in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(show(i) for i in node.items) + ")"
    if isinstance(node, Not):
        return f"NOT {show(node.item)}"
    return "<none>"


def comparison(text: str) -> Comparison:
    node = parse_filter(text)
    assert isinstance(node, Comparison)
    return node


@pytest.mark.parametrize("text", [None, "", "   \n\t"])
def test_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("metrics.val_loss < 1", "metric", "val_loss"),
        ("metric.val_loss < 1", "metric", "val_loss"),
        ("METRICS.val_loss < 1", "metric", "val_loss"),
        ("metrics.train/loss < 1", "metric", "train/loss"),
        ("metrics.loss-2:ema.v1 < 1", "metric", "loss-2:ema.v1"),
        ("metrics.1st < 1", "metric", "1st"),
        ("metrics.`val loss` < 1", "metric", "val loss"),
        ("metrics.`a\\`b` < 1", "metric", "a`b"),
        ("metrics.'quoted key' < 1", "metric", "quoted key"),
        ("params.optimizer.lr = 1", "param", "optimizer.lr"),
        ("param.lr = 1", "param", "lr"),
        ("params.and = 1", "param", "and"),
        ("tags.team = 'x'", "tag", "team"),
        ("tags.`mlflow.note content` = 'x'", "tag", "mlflow.note content"),
        ("status = 'x'", "attribute", "status"),
        ("STATUS = 'x'", "attribute", "status"),
        ("attributes.status = 'x'", "attribute", "status"),
        ("attribute.User = 'x'", "attribute", "user"),
        ("parent_id = 'x'", "attribute", "parent_id"),
        ("end_time > 1", "attribute", "end_time"),
    ],
)
def test_fields(text: str, kind: str, key: str) -> None:
    assert comparison(text).field == Field(kind, key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("params.a = 1", "="),
        ("params.a == 1", "="),
        ("params.a != 1", "!="),
        ("params.a <> 1", "!="),
        ("params.a < 1", "<"),
        ("params.a <= 1", "<="),
        ("params.a > 1", ">"),
        ("params.a >= 1", ">="),
        ("params.a in (1)", "in"),
        ("params.a IN (1)", "in"),
        ("params.a not in (1)", "not in"),
        ("params.a NOT IN (1)", "not in"),
        ("params.a like 'x%'", "like"),
        ("params.a Not Like 'x%'", "not like"),
    ],
)
def test_operators(text: str, op: str) -> None:
    assert comparison(text).op == op


def test_operators_need_no_spaces() -> None:
    assert show(parse_filter("metrics.x<=0.3 and(params.y!='a')")) == (
        "(metrics.x <= 0.3 AND params.y != 'a')"
    )


@pytest.mark.parametrize(
    ("literal", "kind", "number", "text"),
    [
        ("42", "number", 42.0, "42"),
        ("-7", "number", -7.0, "-7"),
        ("0.001", "number", 0.001, "0.001"),
        (".5", "number", 0.5, ".5"),
        ("1e-3", "number", 0.001, "1e-3"),
        ("-2.5E+2", "number", -250.0, "-2.5E+2"),
        ("true", "bool", 1.0, "true"),
        ("FALSE", "bool", 0.0, "false"),
        ("'adam'", "string", None, "adam"),
        ('"adam"', "string", None, "adam"),
        ("'it\\'s'", "string", None, "it's"),
        ('"say \\"hi\\""', "string", None, 'say "hi"'),
        ("'a\\\\b'", "string", None, "a\\b"),
        ("'tab\\there'", "string", None, "tab\there"),
        ("'50\\%'", "string", None, "50\\%"),  # unknown escapes stay, for LIKE
        ("''", "string", None, ""),
        ("'ünïcødé ✓'", "string", None, "ünïcødé ✓"),
    ],
)
def test_literals(literal: str, kind: str, number: float | None, text: str) -> None:
    (value,) = comparison(f"params.x = {literal}").values
    assert (value.kind, value.text) == (kind, text)
    if number is not None:
        assert value.number == number
    assert value.position == len("params.x = ")


def test_in_list() -> None:
    c = comparison("params.x in (1, 'a', true, -2.5,)")
    assert [(v.kind, v.text) for v in c.values] == [
        ("number", "1"),
        ("string", "a"),
        ("bool", "true"),
        ("number", "-2.5"),
    ]


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        (
            "params.a = 1 or params.b = 2 and params.c = 3",
            "(params.a = 1 OR (params.b = 2 AND params.c = 3))",
        ),
        (
            "params.a = 1 and params.b = 2 or params.c = 3",
            "((params.a = 1 AND params.b = 2) OR params.c = 3)",
        ),
        ("not params.a = 1 and params.b = 2", "(NOT params.a = 1 AND params.b = 2)"),
        ("not params.a = 1 or params.b = 2", "(NOT params.a = 1 OR params.b = 2)"),
        ("not (params.a = 1 or params.b = 2)", "NOT (params.a = 1 OR params.b = 2)"),
        (
            "(params.a = 1 or params.b = 2) and params.c = 3",
            "((params.a = 1 OR params.b = 2) AND params.c = 3)",
        ),
        ("not not params.a = 1", "NOT NOT params.a = 1"),
        ("((params.a = 1))", "params.a = 1"),
        (
            "params.a = 1 AND params.b = 2 AnD params.c = 3",
            "(params.a = 1 AND params.b = 2 AND params.c = 3)",
        ),
        (
            "params.a=1 OR params.b=2 or params.c=3",
            "(params.a = 1 OR params.b = 2 OR params.c = 3)",
        ),
    ],
)
def test_precedence(text: str, shape: str) -> None:
    assert show(parse_filter(text)) == shape


def test_times_accept_iso_dates() -> None:
    c = comparison("start_time >= '2024-05-01T00:00:00'")
    assert c.values[0].kind == "number"
    assert c.values[0].number == 1714521600.0
    offset = comparison("end_time < '2024-05-01T02:00:00+02:00'")
    assert offset.values[0].number == 1714521600.0


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("metrics.x <", 11, "expected a value"),
        ("metrics.x 0.3", 10, "expected an operator"),
        ("metrics.x < 0.3 and", 19, "expected a comparison"),
        ("metrics.x < 0.3 and or params.y = 1", 20, "expected a comparison"),
        ("(metrics.x < 1", 14, "')' to close the '(' at position 0"),
        ("metrics.x < 1)", 13, "'and', 'or' or the end"),
        ("params.a = 1 params.b = 2", 13, "'and', 'or' or the end"),
        ("metrics.val_loss < 'low'", 19, "metrics hold numbers"),
        ("metrics.x in (1, 'a')", 17, "metrics hold numbers"),
        ("metrics.x like '1%'", 10, "is a number"),
        ("start_time like '2024%'", 11, "is a number"),
        ("params.x like 5", 14, "quoted pattern"),
        ("foo.bar = 1", 0, "unknown field prefix 'foo.'"),
        ("params.x = 1 and colour = 'red'", 17, "unknown field 'colour'"),
        ("attributes.colour = 'red'", 11, "unknown run attribute 'colour'"),
        ("params.x = 'abc", 11, "unterminated string"),
        ("metrics.`val loss < 1", 8, "unterminated key"),
        ("status = finished", 9, "quote text values: 'finished'"),
        ("params.x in 1", 12, "'(' to start the list"),
        ("params.x in (1 2)", 15, "',' or ')'"),
        ("params.x in ()", 13, "expected a value"),
        ("params.x not 5", 13, "'in' or 'like'"),
        ("params.x = 1 @ 2", 13, "unexpected character '@'"),
        ("metrics. = 1", 8, "expected a key after 'metrics.'"),
        ("metrics.`` = 1", 8, "empty name"),
        ("params.x = 1abc", 11, "invalid number"),
        ("params.x = 1.2.3", 11, "invalid number"),
        ("metrics.x<0.3and params.y = 1", 10, "invalid number"),
        ("start_time > 'yesterday'", 13, "ISO 8601"),
        ("`val loss` < 1", 0, "needs a prefix"),
        ("and params.x = 1", 0, "expected a comparison"),
        ("params.x = -", 11, "expected a value"),
        ("", None, None),
    ],
)
def test_syntax_errors_say_what_and_where(
    text: str, position: int | None, words: str | None
) -> None:
    if position is None:
        assert parse_filter(text) is None
        return
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert err.position == position, err.message
    assert words is not None and words in err.message, err.message
    assert f"position {position}" in err.message
    assert err.filter == text
    assert err.to_dict()["position"] == position
    assert err.code == "invalid_filter" and err.status == 400
    assert isinstance(err, InvalidArgument)


def test_nesting_and_size_are_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "params.a = 1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(FilterSyntaxError, match="nested"):
        parse_filter(deep)
    nots = "not " * (MAX_DEPTH + 1) + "params.a = 1"
    with pytest.raises(FilterSyntaxError, match="nested"):
        parse_filter(nots)
    ok = "(" * (MAX_DEPTH - 1) + "params.a = 1" + ")" * (MAX_DEPTH - 1)
    assert parse_filter(ok) is not None
    many = " or ".join(f"params.a = {i}" for i in range(MAX_COMPARISONS + 1))
    with pytest.raises(FilterSyntaxError, match="comparisons") as info:
        parse_filter(many)
    assert info.value.position == many.rindex("params.a")
    with pytest.raises(FilterSyntaxError, match="longer than"):
        parse_filter("params.a = '" + "x" * 30_000 + "'")


def test_a_non_string_filter_is_rejected() -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(42)  # type: ignore[arg-type]


def test_injection_text_is_just_a_value() -> None:
    c = comparison('params.x = "1\'; DROP TABLE runs; --"')
    assert c.values[0].text == "1'; DROP TABLE runs; --"


@pytest.mark.parametrize(
    ("order_by", "keys"),
    [
        (None, []),
        ("", []),
        ([], []),
        ("-metrics.val_acc", [("metrics.val_acc", True)]),
        ("metrics.val_acc", [("metrics.val_acc", False)]),
        ("metrics.val_acc DESC", [("metrics.val_acc", True)]),
        ("metrics.val_acc asc", [("metrics.val_acc", False)]),
        ("metrics.`val acc` desc", [("metrics.`val acc`", True)]),
        ("params.optimizer.lr", [("params.optimizer.lr", False)]),
        ("name, -start_time", [("name", False), ("start_time", True)]),
        (["tags.team", "attributes.end_time desc"], [("tags.team", False), ("end_time", True)]),
        (["-metrics.a, params.b"], [("metrics.a", True), ("params.b", False)]),
    ],
)
def test_order_by(order_by: str | list[str] | None, keys: list[tuple[str, bool]]) -> None:
    assert [(str(k.field), k.descending) for k in parse_order_by(order_by)] == keys


def test_order_key_fields() -> None:
    assert parse_order_by("-params.lr") == [OrderKey(Field("param", "lr", 1), True)]


@pytest.mark.parametrize(
    ("order_by", "words"),
    [
        ("-metrics.a desc", "either a leading '-' or asc/desc"),
        ("metrics.a sideways", "'asc', 'desc', ',' or the end"),
        ("colour", "unknown field 'colour'"),
        ("metrics.a,", "a field to order by"),
        ("'metrics.a'", "a field to order by"),
        ([1], "must be strings"),
    ],
)
def test_bad_order_by(order_by: object, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as info:
        parse_order_by(order_by)  # type: ignore[arg-type]
    assert not isinstance(info.value, FilterSyntaxError)


def test_like_parts() -> None:
    assert like_parts("a%b_c") == [
        ("a", False),
        ("%", True),
        ("b", False),
        ("_", True),
        ("c", False),
    ]
    assert like_parts("50\\%\\_\\\\x\\") == [
        ("5", False),
        ("0", False),
        ("%", False),
        ("_", False),
        ("\\", False),
        ("x", False),
        ("\\", False),
    ]
