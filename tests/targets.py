"""Where a client test sends its runs, and how it reads them back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    store: str | None  # what `registrum.init(store=...)` gets
    reader: Any  # a Store or HttpStore over the same data
    home: Path
