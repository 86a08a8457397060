"""What a parsed run search is: fields, literals, filter nodes and order keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["metric", "param", "tag", "attribute"]
ValueKind = Literal["number", "string", "bool"]

NUMBER_ATTRIBUTES = ("start_time", "end_time", "duration")  # duration: end minus start
STRING_ATTRIBUTES = ("status", "name", "job_type", "user", "host", "id", "parent_id")
ATTRIBUTES = STRING_ATTRIBUTES + NUMBER_ATTRIBUTES
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")

# A key written without backticks, as in metrics.train/loss.
BARE_KEY = re.compile(r"[A-Za-z0-9_.:/-]+")
_PLURAL = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"}


@dataclass(frozen=True)
class Field:
    """A searchable field: a metric, param or tag key, or a run attribute."""

    kind: FieldKind
    key: str
    position: int = 0

    def __str__(self) -> str:
        if self.kind == "attribute":
            return self.key
        key = self.key if BARE_KEY.fullmatch(self.key) else "`" + self.key.replace("`", "\\`") + "`"
        return f"{_PLURAL[self.kind]}.{key}"

    @property
    def numeric(self) -> bool:
        """Whether the field only holds numbers (metrics, start and end time, duration)."""
        return self.kind == "metric" or (self.kind == "attribute" and self.key in NUMBER_ATTRIBUTES)


@dataclass(frozen=True)
class Value:
    """A literal; `text` is the number as typed, or the string itself."""

    kind: ValueKind
    number: float
    text: str
    position: int


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    values: tuple[Value, ...]
    position: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool
