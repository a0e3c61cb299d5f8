"""The store: one schema on SQLite and PostgreSQL, created and upgraded by migrations."""

from tighten.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
