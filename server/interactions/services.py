"""Everything an interaction needs, passed in explicitly (no globals, no service locator)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.access.grant import OPEN_GRANT, Grant
from server.errors import Issue
from server.fhir.instant import now_us
from server.hooks import Hooks
from server.interactions.locks import KeyedLocks
from server.search.index import Indexer
from server.search.model import Condition, Entry
from server.search.registry import SearchRegistry
from server.settings import Settings
from server.stores.base import Session, Store, Version, Write

CommitListener = Callable[[list[Version]], Awaitable[None]]
"""Called with the versions a session wrote, after it committed (never after a rollback)."""


class TrackedSession:
    """A session that remembers the versions written through it, for the commit listeners."""

    def __init__(self, inner: Session) -> None:
        self._inner = inner
        self.written: list[Version] = []

    async def read(self, type_: str, id_: str) -> Version | None:
        return await self._inner.read(type_, id_)

    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        return await self._inner.find(type_, where, limit)

    async def lock(self, key: str) -> None:
        await self._inner.lock(key)

    async def write(self, write: Write) -> None:
        await self._inner.write(write)
        self.written.append(write.version)

    async def reindex(self, type_: str, id_: str, version: int, entries: Sequence[Entry]) -> bool:
        return await self._inner.reindex(type_, id_, version, entries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ResourceValidator(Protocol):
    """The validation seam: structural validation now; profiles, invariants and terminology later."""

    def __call__(
        self, resource: dict[str, Any], *, profiles: Sequence[str] = (), complete: bool = False
    ) -> list[Issue]: ...


@dataclass
class Services:
    settings: Settings
    store: Store
    registry: SearchRegistry
    indexer: Indexer
    validate: ResourceValidator
    resource_types: frozenset[str]
    hooks: Hooks = field(default_factory=Hooks)
    grant: Grant = OPEN_GRANT
    """What the request's caller may see and write (:mod:`server.access`): the app's Services hold
    the open grant; each request runs with a copy holding its own (:meth:`for_grant`)."""
    profiles: Any = None
    """The profile registry (``profiles.registry.ProfileRegistry``) that validation resolves against."""
    terminology: Any = None
    """The terminology service (``terminology.Terminology``); None = the packaged default."""
    operations: Any = None
    """The operation table (``server.operations.registry.OperationTable``), for the CapabilityStatement."""
    jobs: Any = None
    """The background job runner (``server.jobs.runner.JobRunner``); None = no background jobs."""
    clock: Callable[[], int] = now_us
    listeners: list[CommitListener] = field(default_factory=list)
    """Run after every committed session with what it wrote (conformance resources take effect)."""
    write_locks: KeyedLocks = field(default_factory=KeyedLocks)
    """Lone writes to one resource queue here within this process (see ``retry.in_session``)."""

    def for_grant(self, grant: Grant) -> Services:
        """These services acting for one caller (a shallow copy: the store, caches and listeners are shared)."""
        if grant is self.grant:
            return self
        copied = object.__new__(Services)  # a plain field copy: dataclasses.replace re-runs __init__ (~30 µs)
        copied.__dict__.update(self.__dict__)
        copied.grant = grant
        return copied

    @asynccontextmanager
    async def session(self, outer: Session | None = None) -> AsyncIterator[Session]:
        """Join ``outer`` (a transaction Bundle's session) or open a session of our own; after our
        own session commits, the listeners see what it wrote."""
        if outer is not None:
            yield outer
            return
        async with self.store.session() as session:
            tracked = TrackedSession(session)
            yield tracked
        if tracked.written:
            for listener in self.listeners:
                await listener(tracked.written)
