"""The run-search language's tokenizer: text to tokens, each with its offset."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registrum.store.search.syntax import ATTRIBUTES, BARE_KEY, Field, FieldKind

_PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
}
KEYWORDS = frozenset({"and", "or", "not", "in", "like", "true", "false", "asc", "desc"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR = re.compile(r"<=|>=|!=|<>|==|=|<|>")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"', "`": "`"}


@dataclass(frozen=True)
class Token:
    """One token; `position` is the offset of its first character in the source."""

    kind: str  # word, field, string, number, op, minus, "(", ")", ",", end
    text: str  # the keyword lowercased, else the source text
    position: int
    value: object = None  # str for string, float for number, Field for field


class ParseError(Exception):
    """A syntax error at `position`; the parser's callers re-raise it as the public error."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token; keywords come lowercased."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            tokens.append(Token("end", "", n))
            return tokens
        ch = text[i]
        if ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif ch in "'\"":
            value, end = _quoted(text, i)
            tokens.append(Token("string", text[i:end], i, value))
            i = end
        elif ch.isdigit() or (ch in "-." and _NUMBER.match(text, i)):
            m = _NUMBER.match(text, i)
            if m is None:  # pragma: no cover - the condition above guarantees a match
                raise ParseError("invalid number", i)
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "_.`'\""):
                raise ParseError(f"invalid number {text[i : end + 1]!r}", i)
            tokens.append(Token("number", m.group(), i, float(m.group())))
            i = end
        elif ch == "-":
            tokens.append(Token("minus", "-", i))
            i += 1
        elif m := _OPERATOR.match(text, i):
            op = {"==": "=", "<>": "!="}.get(m.group(), m.group())
            tokens.append(Token("op", op, i))
            i = m.end()
        elif m := _WORD.match(text, i):
            word, end = m.group(), m.end()
            if end < n and text[end] == ".":
                field, end = _field(text, i, word, end + 1)
                tokens.append(Token("field", text[i:end], i, field))
            else:
                lowered = word.lower()
                kind_text = lowered if lowered in KEYWORDS else word
                tokens.append(Token("word", kind_text, i))
            i = end
        elif ch == "`":
            raise ParseError("a backticked key needs a prefix, as in metrics.`val loss`", i)
        else:
            raise ParseError(f"unexpected character {ch!r}", i)


def _field(text: str, start: int, prefix: str, key_start: int) -> tuple[Field, int]:
    kind = _PREFIXES.get(prefix.lower())
    if kind is None:
        raise ParseError(
            f"unknown field prefix {prefix + '.'!r}: a field is metrics.<key>, params.<key>, "
            f"tags.<key> or a run attribute ({', '.join(ATTRIBUTES)})",
            start,
        )
    if key_start < len(text) and text[key_start] in "`'\"":
        key, end = _quoted(text, key_start)
        if not key:
            raise ParseError(
                f"expected a key after {prefix + '.'!r}, found an empty name", key_start
            )
    else:
        m = BARE_KEY.match(text, key_start)
        if m is None:
            raise ParseError(
                f"expected a key after {prefix + '.'!r} (write other characters in "
                "backticks, as in metrics.`val loss`)",
                key_start,
            )
        key, end = m.group(), m.end()
    if kind == "attribute":
        if key.lower() not in ATTRIBUTES:
            raise ParseError(
                f"unknown run attribute {key!r}: expected one of {', '.join(ATTRIBUTES)}",
                key_start,
            )
        key = key.lower()
    return Field(kind, key, start), end


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Reads a quoted string (' " or `) with backslash escapes; unknown escapes stay."""
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    what = "key" if quote == "`" else "string"
    raise ParseError(f"unterminated {what}: expected a closing {quote} for the one here", start)


def describe(token: Token) -> str:
    """The token as an error message quotes it."""
    if token.kind == "end":
        return "the end of the input"
    return repr(token.text)
