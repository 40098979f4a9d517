"""Instants as the stores keep them: integer microseconds since 1970-01-01T00:00:00Z.

``meta.lastUpdated`` is rendered with microseconds in UTC (``2026-11-22T15:01:02.123456Z``), a valid
FHIR ``instant`` (http://hl7.org/fhir/R4/datatypes.html#instant) that orders exactly like the
stored integer, so ``_since``/``_lastUpdated`` comparisons never disagree with what clients see.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def to_instant(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_http_date(us: int) -> str:
    """RFC 9110 HTTP-date for ``Last-Modified``."""
    return format_datetime(EPOCH + timedelta(microseconds=us), usegmt=True)


def from_datetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_http_date(value: str) -> int | None:
    """``If-Modified-Since`` value -> µs, or None when unparsable (the header is then ignored)."""
    try:
        return from_datetime(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None
