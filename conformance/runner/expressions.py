"""FHIRPath in asserts and variables (http://hl7.org/fhirpath/N1/), through fhirpathpy with the
R4 model (so ``value.ofType(Quantity)`` and friends work)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.models import models


class ExpressionError(ValueError):
    """Raised when a FHIRPath expression cannot be parsed or evaluated."""


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Any:
    try:
        return fhirpathpy.compile(expression, models["r4"])
    except Exception as error:  # fhirpathpy raises bare Exception for syntax errors
        raise ExpressionError(f"cannot parse FHIRPath {expression!r}: {error}") from None


def evaluate(expression: str, resource: Any) -> list[Any]:
    """The values ``expression`` gives on ``resource`` (empty when there is no resource)."""
    if resource is None:
        return []
    function = _compiled(expression)
    try:
        return list(function(resource, {"resource": resource, "rootResource": resource}))
    except Exception as error:  # evaluation errors surface as bare Exceptions too
        raise ExpressionError(f"cannot evaluate FHIRPath {expression!r}: {error}") from None
