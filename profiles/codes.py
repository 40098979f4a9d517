"""``OperationOutcome.issue.code`` values the profile stages report, beside those of :mod:`profiles.issues`.

From http://hl7.org/fhir/R4/valueset-issue-type.html; the server copies them into the outcome.
"""

from __future__ import annotations

from profiles.issues import INVALID, REQUIRED, STRUCTURE, VALUE

__all__ = ["BUSINESS_RULE", "CODE_INVALID", "EXTENSION", "INFORMATIONAL", "INVALID", "INVARIANT", "NOT_FOUND",
           "NOT_SUPPORTED", "PROCESSING", "REQUIRED", "STRUCTURE", "VALUE"]

INVARIANT = "invariant"
"""A constraint (``constraint.expression``) evaluated to false or empty."""
CODE_INVALID = "code-invalid"
"""A code is not in the value set of a required or extensible binding."""
EXTENSION = "extension"
"""An extension is unknown, used out of its context, or does not match its definition."""
NOT_FOUND = "not-found"
"""A reference, profile or Questionnaire could not be resolved."""
NOT_SUPPORTED = "not-supported"
"""Something the validator cannot evaluate (an invariant using an unimplemented function)."""
BUSINESS_RULE = "business-rule"
"""A rule about how resources fit together (Bundle document/message structure, duplicate entries)."""
INFORMATIONAL = "informational"
PROCESSING = "processing"
"""A definition is unusable (a profile whose snapshot cannot be generated)."""
