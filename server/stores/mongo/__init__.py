"""The MongoDB store (production): :class:`MongoStore`. Layout and guarantees: :mod:`.schema`."""

from .store import MongoStore as MongoStore

__all__ = ["MongoStore"]
