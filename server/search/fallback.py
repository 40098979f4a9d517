"""fhirpathpy as the fallback for expressions :mod:`server.search.extract` cannot compile.

Only SearchParameters created at run time with unusual FHIRPath end up here (every R4 core
expression compiles). fhirpathpy returns untyped JSON, so results are typed by shape
(:func:`type_by_shape`), ``resolve()`` is supplied (fhirpathpy lacks it) with the same
reference-type logic the compiler uses, and errors on odd data yield no values rather than
failing the write.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from server.search.fhirpath import FhirPathSyntax

Item = tuple[Any, str, str | None]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_DATE = re.compile(r"^\d{4}(-\d\d(-\d\d)?)?$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT")
_SHAPES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"coding"}), "CodeableConcept"),
    (frozenset({"reference"}), "Reference"),
    (frozenset({"family"}), "HumanName"), (frozenset({"given"}), "HumanName"),
    (frozenset({"line"}), "Address"), (frozenset({"city"}), "Address"), (frozenset({"postalCode"}), "Address"),
    (frozenset({"start"}), "Period"), (frozenset({"end"}), "Period"),
    (frozenset({"low"}), "Range"), (frozenset({"high"}), "Range"),
    (frozenset({"event"}), "Timing"), (frozenset({"repeat"}), "Timing"),
    (frozenset({"value", "unit"}), "Quantity"), (frozenset({"value", "code"}), "Quantity"),
    (frozenset({"value", "currency"}), "Money"),
    (frozenset({"system", "code"}), "Coding"), (frozenset({"code"}), "Coding"),
    (frozenset({"value", "use"}), "ContactPoint"),
    (frozenset({"value"}), "Identifier"), (frozenset({"identifier"}), "Reference"),
    (frozenset({"text"}), "CodeableConcept"),
)


def type_by_shape(value: Any) -> str:
    """Best-effort FHIR type of an untyped fhirpathpy result."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str):
        return "date" if _DATE.match(value) else "dateTime" if _DATETIME.match(value) else "string"
    if isinstance(value, dict):
        if "resourceType" in value:
            return str(value["resourceType"])
        keys = value.keys()
        for needed, name in _SHAPES:
            if needed <= keys:
                return name
    return "Element"


def fallback(expression: str, reference_type: Callable[[Any, Any], str | None]
             ) -> Callable[[Any, dict[str, Any]], list[Item]]:
    """A runner for ``expression``; ``reference_type`` is the compiler's rule for ``resolve()``."""
    def resolve_fn(inputs: list[Any]) -> list[Any]:
        return [ResourceNode.create_node({"resourceType": rt}, rt) for v in inputs
                if (rt := reference_type(v, {}))]

    options = {"userInvocationTable": {"resolve": {"fn": resolve_fn, "arity": {0: []}}}}
    try:
        compiled = fhirpathpy.compile(expression, model=models["r4"], options=options)
    except Exception as e:  # fhirpathpy's parser raises bare Exception
        raise FhirPathSyntax(f"{expression!r}: {e}") from e

    def run(value: Any, resource: dict[str, Any]) -> list[Item]:
        try:
            raw = compiled(copy.deepcopy(value), {"resource": resource, "rootResource": resource})
        except Exception:  # fhirpathpy raises bare Exception/ValueError on data it cannot handle
            return []
        out: list[Item] = []
        for v in raw:
            v = _plain(v)
            t = type_by_shape(v)
            out.append((v, t, t if isinstance(v, dict) and t != "Element" else None))
        return out

    return run
