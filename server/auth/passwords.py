"""Password hashing for local users: argon2id (memory-hard, argon2-cffi's RFC 9106 defaults).

The hashing runs in a worker thread (it takes ~0.1 s and 64 MiB on purpose), at most
:data:`CONCURRENT` at a time so a burst of logins cannot exhaust memory. :func:`verify_or_dummy`
costs the same whether or not there is a hash to check, so response times do not tell which user
names exist.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import BadRequest

MIN_LENGTH = 10
"""Fewest characters a password may have."""
MAX_LENGTH = 1024
"""Most characters a password may have (argon2 takes any length; this bounds the request)."""
CONCURRENT = 4
"""Hashes computed at once in one process (each holds :attr:`PasswordHasher.memory_cost` KiB)."""

HASHER = PasswordHasher()
"""The parameters new hashes get; a stored hash made with others is rehashed at the next login."""

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_dummy: tuple[PasswordHasher, str] | None = None


def check_strength(password: str, *, field: str = "password") -> None:
    """:class:`BadRequest` naming ``field`` when the password is too short or too long."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise BadRequest(f"the password must have at least {MIN_LENGTH} characters", expression=[field])
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"the password may have at most {MAX_LENGTH} characters", expression=[field])


def _semaphore() -> asyncio.Semaphore:
    """The running loop's semaphore (a semaphore belongs to one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    found = _slots.get(loop)
    if found is None:
        found = _slots[loop] = asyncio.Semaphore(CONCURRENT)
    return found


async def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of ``password``."""
    hasher = HASHER
    async with _semaphore():
        return await asyncio.to_thread(hasher.hash, password)


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_or_dummy(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; with no stored hash, checks against a dummy hash
    of the same parameters (same cost) and answers False."""
    global _dummy
    hasher = HASHER
    if _dummy is None or _dummy[0] is not hasher:
        _dummy = (hasher, await hash_password(secrets.token_urlsafe(24)))
    async with _semaphore():
        ok = await asyncio.to_thread(_verify, hasher, stored or _dummy[1], password)
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than :data:`HASHER`'s."""
    try:
        return HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True
