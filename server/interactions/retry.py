"""Re-running a write that lost a race it did not ask about, in one place.

A write reads the current version, computes the next one from it and stores it with
compare-and-set on exactly the version it read. When another writer gets in between, the store
refuses the write (:class:`~server.errors.Contention`) and nothing of it is kept. A request with
If-Match asked for that check and answers 412; one without asked for no version-awareness, so the
race is the server's business, not the client's: it is re-run from the top (re-read, re-apply,
re-write) in a fresh session, after a jittered back-off, a bounded number of times.

Lone writes to one resource first queue in their own process (:class:`.locks.KeyedLocks`, free),
so they race only with other processes and with transaction Bundles. Re-runs also take a lease on
each resource the write names (``session.lock``) before reading, so requests that have lost once
are serialised across processes too and every racer lands within a few rounds; the first attempt
takes no lease, so an uncontended write pays no extra round trip. On the embedded store a write
session excludes every other writer, so it never loses a race; on MongoDB a session takes no
lock (journalled sessions) or aborts on a write conflict (multi-document transactions).

Only a request that owns its session is re-run: a write inside a transaction Bundle's session
lets the Contention pass up, and the Bundle is re-run whole (nothing is answered before the end
of a request, so a re-run is never visible to the client).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from server.errors import Contention
from server.interactions.services import Services
from server.stores.base import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 12
"""Including the first; then the request answers 409 with Retry-After."""
FIRST_DELAY_S = 0.005
MAX_DELAY_S = 0.25


def resource_key(type_: str, id_: str) -> str:
    """The lease key of one resource (criteria keys, ``Type?…``, never collide with it)."""
    return f"{type_}/{id_}"


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling, capped, with
    full jitter so that the losers of one round do not collide again in the next."""
    return random.uniform(0.0, min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (attempt - 1)))


async def hold(session: Session, keys: Iterable[str]) -> None:
    """Lease ``keys`` in sorted order (one order for everyone, so two re-runs never deadlock)."""
    for key in sorted(set(keys)):
        await session.lock(key)


async def retried(run: Callable[[int], Awaitable[T]]) -> T:
    """``run(attempt)`` until it does not raise :class:`Contention`, at most :data:`ATTEMPTS` times.
    ``run`` must start from the request's own input each time (it is re-run from the top)."""
    attempt = 1
    while True:
        try:
            return await run(attempt)
        except Contention:
            if attempt >= ATTEMPTS:
                log.warning("a write lost %d races in a row; answering 409", attempt)
                raise
        await asyncio.sleep(backoff(attempt))
        attempt += 1


async def in_session(
    svc: Services,
    session: Session | None,
    body: Callable[[Session], Awaitable[T]],
    *,
    keys: Iterable[str] = (),
) -> T:
    """Run ``body`` in ``session`` when one is given (once: its owner re-runs), else in a session
    of its own, re-run on :class:`Contention`. ``keys`` (the resources the write names) are held
    within the process throughout, and leased in the store by re-runs."""
    if session is not None:
        return await body(session)
    leased = tuple(keys)

    async def run(attempt: int) -> T:
        async with svc.session() as s:
            if attempt > 1:
                await hold(s, leased)
            return await body(s)

    async with svc.write_locks.hold(leased):
        return await retried(run)
