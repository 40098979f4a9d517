"""What the validator reports: one :class:`ValidationIssue` per problem found.

An issue maps one-to-one onto an ``OperationOutcome.issue``
(http://hl7.org/fhir/R4/operationoutcome.html): ``severity`` and ``code`` use the
``issue-severity`` and ``issue-type`` code systems
(http://hl7.org/fhir/R4/valueset-issue-severity.html, http://hl7.org/fhir/R4/valueset-issue-type.html)
and ``expression`` is the simple FHIRPath location of the offending element, so the server can
turn a list of issues into an OperationOutcome without knowing how they were found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["fatal", "error", "warning", "information"]

FATAL: Severity = "fatal"
ERROR: Severity = "error"
WARNING: Severity = "warning"
INFORMATION: Severity = "information"

# issue-type codes the structural stage uses (http://hl7.org/fhir/R4/valueset-issue-type.html)
STRUCTURE = "structure"
"""The JSON does not have the shape the definitions give (unknown key, wrong JSON kind, array vs single)."""
REQUIRED = "required"
"""An element with ``min`` ≥ 1 is absent."""
VALUE = "value"
"""A primitive value does not satisfy its type's lexical rules (regex, range)."""
INVALID = "invalid"
"""The content cannot be validated at all (not an object, unknown or abstract resourceType)."""


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem, located by a FHIRPath ``expression`` such as ``Patient.identifier[1].value``.

    Resources nested in Bundle entries, Parameters or ``contained`` are located through their
    container (``Bundle.entry[0].resource.name[0]``): the ``ofType()`` step is left out, as the
    resource's own ``resourceType`` already says which type it is.
    """

    severity: Severity
    code: str
    message: str
    expression: str

    @property
    def is_error(self) -> bool:
        """True for ``fatal`` and ``error``: the issues that make a resource unacceptable."""
        return self.severity == ERROR or self.severity == FATAL
