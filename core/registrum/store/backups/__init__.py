"""Backups of a store (`registrum backup`, `registrum restore`): a consistent snapshot of the
database and its blobs into a folder with a manifest, and a checked restore into an empty
store. `manifest.py` says what a backup folder holds."""

from __future__ import annotations

from registrum.store.backups.restore import Restored, restore
from registrum.store.backups.snapshot import backup

__all__ = ["Restored", "backup", "restore"]
