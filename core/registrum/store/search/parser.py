"""The run-search language: a filter string to a small AST, and order-by specs.

Grammar (keywords are case-insensitive; `not` binds tighter than `and`, which
binds tighter than `or`)::

    filter     := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" or ")" | comparison
    comparison := field ("=" | "!=" | "<" | "<=" | ">" | ">=") value
                | field ["not"] "in" "(" value ("," value)* ")"
                | field ["not"] "like" string
    field      := ("metrics" | "params" | "tags" | "attributes") "." key | attribute
    key        := [A-Za-z0-9_.:/-]+ | `any text`
    value      := number | string | "true" | "false"

Every syntax error is a `FilterSyntaxError` whose `position` is the 0-based
offset of the offending character, so a caller can point at it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

from registrum.errors import FilterSyntaxError, InvalidArgument
from registrum.store.search.syntax import (
    ATTRIBUTES,
    NUMBER_ATTRIBUTES,
    And,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    OrderKey,
    Value,
)
from registrum.store.search.tokens import KEYWORDS, ParseError, Token, describe, tokenize

__all__ = [
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "And",
    "Comparison",
    "Field",
    "Node",
    "Not",
    "Or",
    "OrderKey",
    "Value",
    "like_parts",
    "parse_filter",
    "parse_order_by",
]

# Bounds that keep a hostile filter from exhausting the parser or the database
# (SQLite refuses expressions nested deeper than 1000).
MAX_FILTER_LENGTH = 20_000
MAX_DEPTH = 50
MAX_COMPARISONS = 200
_EXPECTED_OP = "an operator (=, !=, <, <=, >, >=, in, not in, like, not like)"
_EXPECTED_VALUE = "a value (a number, a quoted string, true or false)"


def parse_filter(text: str | None) -> Node | None:
    """Parses a filter; None (match every run) for None or a blank string.

    Raises:
        FilterSyntaxError: the filter is not valid; `position` says where.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise FilterSyntaxError("filter must be a string", position=0, filter=str(text))
    if not text.strip():
        return None
    try:
        if len(text) > MAX_FILTER_LENGTH:
            raise ParseError(
                f"filter is longer than {MAX_FILTER_LENGTH} characters", MAX_FILTER_LENGTH
            )
        parser = _Parser(text, tokenize(text))
        node = parser.parse_or(0)
        parser.expect_end("'and', 'or' or the end of the filter")
        return node
    except ParseError as exc:
        raise FilterSyntaxError(
            f"{exc.message} (at position {exc.position})", position=exc.position, filter=text
        ) from None


def parse_order_by(order_by: str | Sequence[str] | None) -> list[OrderKey]:
    """Parses `"-metrics.acc"`, `"metrics.acc desc, name"` or a list of such.

    Raises:
        InvalidArgument: an item is not a field with an optional direction.
    """
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"order_by items must be strings, got {type(item).__name__}")
        if not item.strip():
            continue
        try:
            keys.extend(_Parser(item, tokenize(item)).parse_order())
        except ParseError as exc:
            raise InvalidArgument(
                f"order_by {item!r}: {exc.message} (at position {exc.position})",
                position=exc.position,
                order_by=item,
            ) from None
    return keys


def like_parts(pattern: str) -> list[tuple[str, bool]]:
    """Splits a LIKE pattern into (char, is_wildcard) pairs.

    `%` and `_` are wildcards unless escaped with a backslash; a backslash
    makes the next character literal, and a trailing one is itself literal.
    """
    parts: list[tuple[str, bool]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append((pattern[i + 1], False))
            i += 2
            continue
        parts.append((ch, ch in "%_"))
        i += 1
    return parts


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.comparisons = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text in words

    def fail(self, expected: str, token: Token | None = None) -> ParseError:
        token = token or self.tok
        return ParseError(f"expected {expected}, found {describe(token)}", token.position)

    def expect_end(self, expected: str) -> None:
        if self.tok.kind != "end":
            raise self.fail(expected)

    def parse_or(self, depth: int) -> Node:
        items = [self.parse_and(depth)]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self, depth: int) -> Node:
        items = [self.parse_unary(depth)]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise ParseError(
                f"filter is nested more than {MAX_DEPTH} levels deep", self.tok.position
            )
        if self.is_word("not"):
            self.advance()
            return Not(self.parse_unary(depth + 1))
        if self.tok.kind == "(":
            opening = self.advance()
            node = self.parse_or(depth + 1)
            if self.tok.kind != ")":
                raise self.fail(
                    f"')' to close the '(' at position {opening.position}, or 'and'/'or'"
                )
            self.advance()
            return node
        return self.parse_comparison()

    def parse_field(self, expected: str) -> Field:
        token = self.tok
        if token.kind == "field":
            self.advance()
            assert isinstance(token.value, Field)
            return token.value
        if token.kind == "word" and token.text.lower() in ATTRIBUTES:
            self.advance()
            return Field("attribute", token.text.lower(), token.position)
        if token.kind == "word" and token.text not in KEYWORDS:
            raise ParseError(
                f"unknown field {token.text!r}: a field is metrics.<key>, params.<key>, "
                f"tags.<key> or a run attribute ({', '.join(ATTRIBUTES)})",
                token.position,
            )
        raise self.fail(expected)

    def parse_comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise ParseError(
                f"filter has more than {MAX_COMPARISONS} comparisons; use 'in (...)' for lists",
                self.tok.position,
            )
        field = self.parse_field("a comparison such as metrics.loss < 0.3, 'not' or '('")
        op_token = self.tok
        if op_token.kind == "op":
            self.advance()
            op = op_token.text
            values: tuple[Value, ...] = (self.parse_value(field, op),)
        elif self.is_word("in", "like", "not"):
            negated = self.is_word("not")
            if negated:
                self.advance()
                if not self.is_word("in", "like"):
                    raise self.fail(f"'in' or 'like' after '{field} not'")
            keyword = self.advance().text
            op = f"not {keyword}" if negated else keyword
            if keyword == "in":
                values = self.parse_list(field, op)
            else:
                values = (self.parse_value(field, op),)
        else:
            raise self.fail(f"{_EXPECTED_OP} after {field}")
        _check_types(field, op, values, op_token.position)
        if field.kind == "attribute" and field.key in NUMBER_ATTRIBUTES:
            values = tuple(_as_time(field, v) for v in values)
        return Comparison(field, op, values, field.position)

    def parse_list(self, field: Field, op: str) -> tuple[Value, ...]:
        if self.tok.kind != "(":
            raise self.fail(f"'(' to start the list after '{op}'")
        self.advance()
        values = [self.parse_value(field, op)]
        while self.tok.kind == ",":
            self.advance()
            if self.tok.kind == ")":  # a trailing comma is fine
                break
            values.append(self.parse_value(field, op))
        if self.tok.kind != ")":
            raise self.fail("',' or ')' in the list of values")
        self.advance()
        return tuple(values)

    def parse_value(self, field: Field, op: str) -> Value:
        token = self.tok
        if token.kind == "number":
            self.advance()
            assert isinstance(token.value, float)
            return Value("number", token.value, token.text, token.position)
        if token.kind == "string":
            self.advance()
            assert isinstance(token.value, str)
            return Value("string", math.nan, token.value, token.position)
        if token.kind == "word" and token.text in ("true", "false"):
            self.advance()
            truth = token.text == "true"
            return Value("bool", 1.0 if truth else 0.0, token.text, token.position)
        hint = ""
        if token.kind == "word" and token.text not in KEYWORDS:
            hint = f" (quote text values: '{token.text}')"
        raise ParseError(
            f"expected {_EXPECTED_VALUE} after '{field} {op}', found {describe(token)}{hint}",
            token.position,
        )

    def parse_order(self) -> list[OrderKey]:
        keys: list[OrderKey] = []
        while True:
            descending = False
            minus = self.tok.kind == "minus"
            if minus:
                self.advance()
                descending = True
            field = self.parse_field("a field to order by, such as -metrics.val_acc or start_time")
            if self.is_word("asc", "desc"):
                direction = self.advance()
                if minus:
                    raise ParseError(
                        "use either a leading '-' or asc/desc, not both", direction.position
                    )
                descending = direction.text == "desc"
            keys.append(OrderKey(field, descending))
            if self.tok.kind == "end":
                return keys
            if self.tok.kind != ",":
                raise self.fail("'asc', 'desc', ',' or the end")
            self.advance()


def _check_types(field: Field, op: str, values: tuple[Value, ...], op_position: int) -> None:
    if op.endswith("like"):
        if field.numeric:
            raise ParseError(
                f"'{op}' matches text, but {field} is a number: use =, !=, <, <=, >, >= or in",
                op_position,
            )
        if values[0].kind != "string":
            raise ParseError(f"'{op}' needs a quoted pattern, as in '%abc%'", values[0].position)
        return
    if field.kind == "metric":
        for value in values:
            if value.kind == "string":
                raise ParseError(
                    f"{field} is a metric and metrics hold numbers, so it cannot equal or "
                    f"be ordered against the text {value.text!r}: compare it with a number",
                    value.position,
                )


def _as_time(field: Field, value: Value) -> Value:
    """Times are epoch seconds; an ISO 8601 string (UTC unless it says) also works."""
    if value.kind != "string":
        return value
    try:
        parsed = datetime.fromisoformat(value.text)
    except ValueError:
        raise ParseError(
            f"{field} is a time in epoch seconds: compare it with a number or an ISO 8601 "
            f"date such as '2024-05-01T12:00:00', not {value.text!r}",
            value.position,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return Value("number", parsed.timestamp(), value.text, value.position)
