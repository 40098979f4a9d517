"""One exception root for everything the server reports to a client.

Every error a request can end in derives from :class:`FhirError`. Each class carries the HTTP
status and the OperationOutcome ``issue.code`` (http://hl7.org/fhir/R4/valueset-issue-type.html);
``server.http.handlers`` turns them into responses in one place. Lower layers (stores, parsers,
the validator) raise these, or are translated into them by a table, never bare ``Exception``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong, where (FHIRPath ``expression``), how bad."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict:
        out: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """Root of every error answered to a client as an OperationOutcome."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "exception"

    def __init__(
        self,
        message: str,
        *,
        expression: Sequence[str] = (),
        issues: Sequence[Issue] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expression = tuple(expression)
        self.issues = list(issues) or [Issue("error", self.code, message, self.expression)]
        self.headers = headers or {}


class BadRequest(FhirError):
    """Raised when the request is malformed: unparsable JSON, a wrong resourceType, a bad parameter."""

    status = 400
    code = "invalid"


class InvalidSearch(BadRequest):
    """Raised when a search parameter or its value cannot be understood (names the parameter)."""

    code = "invalid"


class SearchTooCostly(InvalidSearch):
    """Raised when a search exceeds a limit of the search core (chain depth, parameter or value
    count, query length: see ``server.search.limits``); names the parameter that crossed it."""

    code = "too-costly"


class NotSupported(FhirError):
    """Raised when a request is understood but the feature is declined (e.g. ``_filter``)."""

    status = 400
    code = "not-supported"


class Unauthenticated(FhirError):
    """Raised when a request needs a bearer token and has none, or one that is not valid
    (401 with ``WWW-Authenticate: Bearer``, RFC 6750 §3)."""

    status = 401
    code = "login"

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        challenge = 'Bearer realm="yidang"' + (f', error="{error}"' if error else "")
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(FhirError):
    """Raised when the access policy refuses an interaction the caller is known to ask for
    (a type or an operation outside the token's scopes or role, a write to another institution's
    resource). A resource the caller may not see is a :class:`NotFound`, never this."""

    status = 403
    code = "forbidden"


Unauthorized = Forbidden
"""The earlier name of :class:`Forbidden`."""


class NotFound(FhirError):
    """Raised when a resource type, resource, version or route does not exist."""

    status = 404
    code = "not-found"


class MethodNotAllowed(FhirError):
    """Raised when the HTTP method is not defined for the URL."""

    status = 405
    code = "not-supported"


class NotAcceptable(FhirError):
    """Raised when the client asks for a format the server cannot produce (``Accept``/``_format``)."""

    status = 406
    code = "not-supported"


class Conflict(FhirError):
    """Raised when a write collides with the current state: version conflicts without If-Match."""

    status = 409
    code = "conflict"


class Contention(Conflict):
    """Raised when a write lost a race it did not ask about: a concurrent writer changed the resource
    between this request's read and its compare-and-set (no If-Match), or the store aborted a
    transaction over a write conflict. Nothing of it was stored, so the request can be re-run from
    the top; :mod:`server.interactions.retry` does that, and only a request that keeps losing
    answers 409 with ``Retry-After``."""

    def __init__(
        self, message: str, *, expression: Sequence[str] = (), headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, expression=expression, headers=headers or {"Retry-After": "1"})


class TooManyRequests(FhirError):
    """Raised when a client exceeds its rate limit (429 with ``Retry-After``)."""

    status = 429
    code = "throttled"


class Gone(FhirError):
    """Raised when a read hits a deleted resource (http.html#read: 410 Gone)."""

    status = 410
    code = "deleted"


class PreconditionFailed(FhirError):
    """Raised when If-Match does not hold, or a conditional interaction matches more than allowed."""

    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    """Raised when a request body exceeds the configured maximum size."""

    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirError):
    """Raised when the request body's Content-Type is not one the interaction accepts."""

    status = 415
    code = "not-supported"


class Unprocessable(FhirError):
    """Raised when a resource is well-formed JSON but invalid against its definitions (422)."""

    status = 422
    code = "processing"


class StoreUnavailable(FhirError):
    """Raised when the store cannot be reached; answered 503 so clients may retry."""

    status = 503
    code = "transient"


class TooManyMatches(PreconditionFailed):
    """Raised when a conditional interaction's criteria match more than one resource."""

    code = "multiple-matches"


class UpstreamError(FhirError):
    """Raised when a lower layer (the web framework, the terminology service) decided the status:
    the HTTP status and issue code are taken from it instead of from the class."""

    def __init__(self, message: str, *, status: int, code: str = "processing") -> None:
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        super().__init__(message)
