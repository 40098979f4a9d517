"""The storage seam: one Protocol both stores implement, and the records they exchange.

A store keeps, per resource, every version (the current one is the highest ``version``) and the
search entries of the current version. It knows nothing of HTTP, FHIR versioning rules or search
semantics: interactions decide *what* to write; the store makes each write session atomic and
checks the one invariant it owns: a write names the version it replaces (compare-and-set), so no
update is ever lost, with or without multi-document transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from server.search.explain import StorePlan
from server.search.model import Condition, Entry, Query

Method = Literal["POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one resource as stored. ``body`` is the resource's JSON (with ``meta``
    already set) as bytes, so a plain read is answered without parsing; None when deleted."""

    type: str
    id: str
    version: int
    last_updated: int
    """Microseconds since 1970-01-01T00:00:00Z."""
    deleted: bool
    method: Method
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Write:
    """A new version to store, with the entries to index and the version it must replace
    (``expected`` = None: the resource must not exist yet, or exist only as deleted)."""

    version: Version
    entries: Sequence[Entry]
    expected: int | None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """History of one resource (type and id), one type (type), or the system (neither)."""

    type: str | None = None
    id: str | None = None
    since: int | None = None
    at: int | None = None
    count: int = 50
    before: tuple[int, str, str, int] | None = None
    """Keyset cursor: (last_updated, type, id, version) of the last row of the previous page."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    rows: list[Version]
    total: int | None
    next_after: tuple[object, ...] | None
    """Cursor for the next page, None when this is the last one."""


class VersionConflict(Exception):
    """A write's ``expected`` version is not the current one (another writer got there first)."""

    def __init__(self, type_: str, id_: str, current: int | None) -> None:
        super().__init__(f"{type_}/{id_} is at version {current}")
        self.current = current


class Session(Protocol):
    """A unit of work: every write in it lands together or not at all."""

    async def read(self, type_: str, id_: str) -> Version | None:
        """Current version (possibly a deletion), seeing this session's own writes."""

    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        """Ids of current, non-deleted ``type_`` resources matching ``where`` (own writes seen)."""

    async def lock(self, key: str) -> None:
        """Hold ``key`` until the session ends, so that match-then-write (conditional create,
        update, delete) on the same key is serialised across requests and processes."""

    async def write(self, write: Write) -> None:
        """Store a new version; raises :class:`VersionConflict` when ``write.expected`` is stale."""

    async def append(self, writes: Sequence[Write]) -> None:
        """Store brand-new resources in bulk (the audit writer's batches): each ``write`` creates a
        resource whose id was never used (a fresh UUID; ``expected`` None), so no per-resource
        compare-and-set is needed, only one existence check and one bulk insert per table. Raises
        :class:`VersionConflict` when an id exists after all; the session must then be abandoned
        (its writes roll back)."""

    async def reindex(self, type_: str, id_: str, version: int, entries: Sequence[Entry]) -> bool:
        """Replace the search entries (and sort values) of ``type_/id_`` without making a new
        version, only if ``version`` is still its current, non-deleted version; False otherwise
        (a concurrent write has indexed it already). Used by ``$reindex`` after a SearchParameter
        change."""


class Store(Protocol):
    """What every store offers. All methods are async; there are no sync twins."""

    kind: str
    """``sqlite`` or ``mongo``: shown by ``yidang serve``, ``/readyz`` and the CapabilityStatement."""

    async def open(self) -> None:
        """Connect and create schema and indexes (idempotent; never a manual script)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def read(self, type_: str, id_: str) -> Version | None: ...

    async def vread(self, type_: str, id_: str, version: int) -> Version | None: ...

    async def current_holds(self, type_: str, id_: str, version: int, where: Condition) -> bool | None:
        """Whether ``where`` (index tests) holds for ``type_/id_`` on the entries the store holds for
        it, when its current version is ``version`` and not deleted: how a read's visibility is
        decided without parsing and indexing the body again (on what searches see). None when the
        current version is another one, or when the store cannot answer cheaply (the caller then
        decides on the body)."""

    async def read_holding(self, type_: str, id_: str, where: Condition) -> tuple[Version | None, bool | None]:
        """:meth:`read`, and :meth:`current_holds` of ``where`` on what it read, in one step where the
        store can (the embedded store: one statement, as a read costs). The default reads and
        leaves the condition undecided (None)."""
        return await self.read(type_, id_), None

    async def history(self, query: HistoryQuery) -> list[Version]:
        """Newest first, at most ``query.count`` rows."""

    async def search(self, query: Query) -> SearchResult: ...

    async def query_plan(self, query: Query) -> StorePlan:
        """How :meth:`search` runs ``query`` (for ``__explain``; see :mod:`server.search.explain`)."""

    def session(self) -> AbstractAsyncContextManager[Session]:
        """A write session: commit on normal exit, roll back every write on an exception."""

    async def stats(self) -> dict[str, Any]:
        """Counts for ``/metrics`` and benchmarks (resources by type, versions)."""

    # --- small records beside the resources: clients, users, token ids, revocations ------------

    async def kv_get(self, space: str, key: str) -> dict[str, Any] | None:
        """The record ``key`` of ``space`` (``clients``, ``users``, ``jti``, ``revoked`` …), or None
        when there is none or it has expired."""

    async def kv_put(self, space: str, key: str, value: dict[str, Any], *, create_only: bool = False,
                     expires: int | None = None) -> bool:
        """Store ``value`` under ``key``; with ``create_only`` only when no unexpired record is there
        (atomic across processes and servers: a replayed token id is refused by exactly this), and
        False when one is. ``expires``: microseconds since 1970 after which the record is gone."""

    async def kv_delete(self, space: str, key: str) -> bool:
        """Remove ``key``; False when it was not there."""

    async def kv_list(self, space: str) -> list[tuple[str, dict[str, Any]]]:
        """Every unexpired record of ``space``, sorted by key."""

    def check_document(self, type_: str, body: bytes, entries: Sequence[Entry]) -> None:
        """Raise :class:`~server.errors.PayloadTooLarge` when a resource (``body``, its JSON) with
        ``entries`` could not be stored as one record. Pure and synchronous: the write path calls it
        before the costly validating and indexing (with no entries) and again before writing."""
