"""Server settings: passed to `create_app`, never read at import time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """What the server serves.

    Args:
        store_url: database URL (`sqlite:///...` or `postgresql+psycopg://...`);
            None for the embedded default under `REGISTRUM_HOME`.
        blobs: folder of the local blob backend; None for the default beside the database.
        max_body_bytes: largest JSON request body; larger ones get 413.
            Blob uploads stream and are not limited by it.
    """

    store_url: str | None = None
    blobs: Path | str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
