"""Per-resource locks inside one process, for writes that name their resource.

Lone writes to one resource from one process queue here instead of racing in the store: a race
lost in the store costs a wasted read, patch, validation and write, and a re-run, where waiting
on an ``asyncio.Lock`` costs nothing. Races between processes (or with transaction Bundles, which
take no lock here) are still possible and are settled by the store's compare-and-set and
:mod:`.retry`. Pure asyncio, no I/O; one table per :class:`~.services.Services`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class KeyedLocks:
    """``async with locks.hold(keys)``: one holder per key at a time; entries vanish when unused."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold every key, taken in sorted order (one order for all holders: no deadlock)."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._one(key))
            yield

    @asynccontextmanager
    async def _one(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
