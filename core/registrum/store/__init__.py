"""The store: the service layer, its schema and migrations, and blob backends."""

from registrum.store.service import Store, open_store

__all__ = ["Store", "open_store"]
