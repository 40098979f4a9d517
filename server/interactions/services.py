"""Everything an interaction needs, passed in explicitly (no globals, no service locator)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.errors import Issue
from server.fhir.instant import now_us
from server.hooks import Hooks
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.settings import Settings
from server.stores.base import Session, Store


class ResourceValidator(Protocol):
    """The validation seam: structural validation now; profiles, invariants and terminology later."""

    def __call__(self, resource: dict[str, Any], *, profiles: Sequence[str] = ()) -> list[Issue]: ...


@dataclass
class Services:
    settings: Settings
    store: Store
    registry: SearchRegistry
    indexer: Indexer
    validate: ResourceValidator
    resource_types: frozenset[str]
    hooks: Hooks = field(default_factory=Hooks)
    operations: Any = None
    """The operation table (``server.operations.registry.OperationTable``), for the CapabilityStatement."""
    clock: Callable[[], int] = now_us

    @asynccontextmanager
    async def session(self, outer: Session | None = None) -> AsyncIterator[Session]:
        """Join ``outer`` (a transaction Bundle's session) or open a session of our own."""
        if outer is not None:
            yield outer
            return
        async with self.store.session() as session:
            yield session
