"""PyMongo exceptions → :mod:`server.errors`, by one table applied in one place.

Like httpx's ``map_exceptions``: every public store and session method runs inside
:func:`map_errors` (directly or through :func:`mapped`), so no ``pymongo`` exception ever reaches
the interactions layer, and the HTTP layer answers each with the right status and OperationOutcome
issue code (http://hl7.org/fhir/R4/valueset-issue-type.html). The write path translates the one
error that carries meaning there (a duplicate ``_id`` = another writer created the resource first)
into :class:`~server.stores.base.VersionConflict` itself, before this table sees it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from bson.errors import InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from server.errors import (
    Contention,
    FhirError,
    PayloadTooLarge,
    StoreUnavailable,
    Unprocessable,
)

log = logging.getLogger(__name__)

RETRY_AFTER = {"Retry-After": "1"}
"""Transient collisions are worth retrying at once; the header tells clients so (RFC 9110 §10.2.3)."""

BSON_OBJECT_TOO_LARGE = 10334
"""Server error code for a document over the 16 MiB BSON limit (checked server-side too)."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


def _too_large(exc: BaseException) -> bool:
    return isinstance(exc, DocumentTooLarge) or (
        isinstance(exc, OperationFailure) and exc.code == BSON_OBJECT_TOO_LARGE
    )


ERROR_TABLE: tuple[tuple[Callable[[BaseException], bool], Callable[[BaseException], FhirError]], ...] = (
    (
        _transient,
        lambda e: Contention("the write collided with a concurrent transaction; retry the request"),
    ),
    (_too_large, lambda e: PayloadTooLarge("the resource exceeds the store's 16 MiB document limit")),
    (
        lambda e: isinstance(e, DuplicateKeyError),
        lambda e: Contention("a concurrent write created the same record; retry"),
    ),
    (
        lambda e: isinstance(e, ConnectionFailure | WriteConcernError | ExecutionTimeout),
        lambda e: StoreUnavailable(f"MongoDB is unavailable: {e}", headers=RETRY_AFTER),
    ),
    (
        lambda e: isinstance(e, InvalidDocument | OverflowError),
        lambda e: Unprocessable(f"the resource cannot be stored in MongoDB: {e}"),
    ),
    (lambda e: isinstance(e, PyMongoError), lambda e: FhirError(f"MongoDB error: {e}")),
)
"""First matching row wins; ``ServerSelectionTimeoutError``, ``AutoReconnect``, ``NetworkTimeout``
and ``NotPrimaryError`` are all ``ConnectionFailure`` subclasses. ``OverflowError`` is what BSON
raises for an integer beyond 64 bits."""


def translate(exc: BaseException) -> FhirError | None:
    """The :class:`FhirError` for a driver exception, or None when the table does not cover it."""
    for matches, build in ERROR_TABLE:
        if matches(exc):
            return build(exc)
    return None


@contextmanager
def map_errors() -> Iterator[None]:
    """Re-raise driver exceptions as :class:`FhirError` (the original is kept as ``__cause__``)."""
    try:
        yield
    except FhirError:
        raise
    except (PyMongoError, InvalidDocument, OverflowError) as exc:
        mapped_error = translate(exc)
        if mapped_error is None:  # pragma: no cover - the table ends with a PyMongoError catch-all
            raise
        log.debug("mongo error %r mapped to %s", exc, type(mapped_error).__name__)
        raise mapped_error from exc


P = ParamSpec("P")
R = TypeVar("R")


def mapped(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorate an async method so it runs inside :func:`map_errors`."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with map_errors():
            return await fn(*args, **kwargs)

    return wrapper
