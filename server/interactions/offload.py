"""CPU-heavy work on large inputs runs in a worker thread, so one big request never stalls the event loop.

Parsing, validating, indexing and serialising a resource is pure Python and grows with its size: a
15 MiB Patient took 12-20 s, and while it ran on the event loop every other request (``/healthz``
included) waited. Above :data:`OFFLOAD_BYTES` such work is handed to a thread; the interpreter
switches threads every few milliseconds (``sys.getswitchinterval``), so the loop keeps answering
meanwhile. Small inputs -- nearly every request -- stay on the loop, where a thread hop (tens of
microseconds) would cost more than the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")

OFFLOAD_BYTES = 64 * 1024
"""Inputs of this size and more (JSON bytes) are worked on in a thread: validating and indexing
64 KiB of FHIR JSON takes tens of milliseconds, a thread hop tens of microseconds."""


def is_large(size: int) -> bool:
    return size >= OFFLOAD_BYTES


async def off_loop(size: int, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``, in a worker thread when ``size`` (the input's JSON bytes) is large."""
    if not is_large(size):
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)
