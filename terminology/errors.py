"""Errors raised by the terminology service.

``terminology`` must not import ``server`` (layering), so these form their own small tree under
:class:`TerminologyError`. Each class carries the HTTP status and OperationOutcome issue type
(http://hl7.org/fhir/R4/valueset-issue-type.html) the server should answer with, so the mapping
to ``server.errors`` is one table in the HTTP layer.

A code system the server does not carry is *not* an error for ``$validate-code``: that operation
answers "unknown" (see :class:`terminology.service.CodeCheck`). These errors are for operations
that cannot produce any answer: ``$lookup`` of an unknown code, ``$expand`` of a value set that
needs SNOMED CT, an unsupported filter operator, a malformed CSV table.
"""

from __future__ import annotations


class TerminologyError(Exception):
    """Root of the terminology errors; ``status`` and ``issue_code`` say how to answer over HTTP."""

    status: int = 400
    issue_code: str = "processing"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(TerminologyError):
    """Raised when operation parameters are missing, contradictory or malformed."""

    status = 400
    issue_code = "invalid"


class UnknownSystem(TerminologyError):
    """Raised when an operation needs the content of a code system this server does not carry."""

    status = 404
    issue_code = "not-found"

    def __init__(self, system: str, message: str | None = None) -> None:
        super().__init__(message or f"Code system {system!r} is not known to this server")
        self.system = system


class UnknownCode(TerminologyError):
    """Raised when ``$lookup``/``$subsumes`` name a code the (known) code system does not define."""

    status = 404
    issue_code = "not-found"

    def __init__(self, system: str, code: str, *, partial: bool = False) -> None:
        where = f"this server's partial copy of code system {system!r}" if partial else f"code system {system!r}"
        super().__init__(f"Code {code!r} is not defined in {where}")
        self.system = system
        self.code = code


class UnknownResource(TerminologyError):
    """Raised when a ValueSet or ConceptMap canonical url does not resolve."""

    status = 404
    issue_code = "not-found"

    def __init__(self, kind: str, url: str) -> None:
        super().__init__(f"{kind} {url!r} is not known to this server")
        self.kind = kind
        self.url = url


class NotSupported(TerminologyError):
    """Raised when a request is valid but needs something this server cannot do.

    For example expanding a value set defined by a SNOMED CT filter when no published expansion
    exists, or a filter operator outside R4's list.
    """

    status = 422
    issue_code = "not-supported"


class TooCostly(TerminologyError):
    """Raised when an expansion would return more codes than the server is willing to send in one page.

    The client can page (``count``/``offset``) or narrow with ``filter``
    (http://hl7.org/fhir/R4/valueset-operation-expand.html).
    """

    status = 422
    issue_code = "too-costly"


class InvalidCodeTable(InvalidRequest):
    """Raised when a CSV code table cannot be turned into a CodeSystem (missing column, bad parent, ...)."""
