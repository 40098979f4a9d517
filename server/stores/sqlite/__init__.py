"""The embedded default store: SQLite (standard library) in WAL mode, in a data directory."""

from server.stores.sqlite.store import SqliteStore as SqliteStore

__all__ = ["SqliteStore"]
