"""The key-value records both stores keep beside the resources (:meth:`Store.kv_put` and friends). Pure.

A record is ``value`` (a JSON object, stored as its orjson bytes so it round-trips exactly on both
stores) under ``key`` in a ``space`` (``clients``, ``users``, ``jti``, ``revoked``, ``codes``), with an
optional expiry in microseconds since 1970. A record is *live* until its expiry has passed: at the
expiry instant itself it still counts (a replay check errs on the side of refusing); after it, every
read treats it as absent, and the stores remove it lazily.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

SEPARATOR = "\x1f"
"""Between space and key where a store joins them into one string (MongoDB's ``_id``); spaces are
names chosen by the code and may not contain it, so the joined key is unambiguous."""


def now_us() -> int:
    return time.time_ns() // 1000


def live(expires: int | None, now: int) -> bool:
    """Whether a record with this expiry is still there at ``now``."""
    return expires is None or expires >= now


def check_space(space: str) -> str:
    if not space or SEPARATOR in space:
        raise ValueError(f"not a key-value space name: {space!r}")
    return space


def encode(value: dict[str, Any]) -> bytes:
    if not isinstance(value, dict):
        raise TypeError(f"a key-value record is a JSON object, not {type(value).__name__}")
    return orjson.dumps(value)


def decode(data: bytes) -> dict[str, Any]:
    value = orjson.loads(data)
    assert isinstance(value, dict)
    return value
