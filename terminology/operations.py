"""The terminology operations as one table: FHIR parameters in, the service method's answer out.

The HTTP layer hands over either a ``Parameters`` resource (POST) or the query string (GET, as
``{name: [values]}``) and gets back the ``Parameters``/``ValueSet`` to return. Parameter names
are those of the R4 OperationDefinitions:
http://hl7.org/fhir/R4/codesystem-operation-lookup.html, …-subsumes.html,
http://hl7.org/fhir/R4/valueset-operation-validate-code.html,
http://hl7.org/fhir/R4/codesystem-operation-validate-code.html,
http://hl7.org/fhir/R4/valueset-operation-expand.html,
http://hl7.org/fhir/R4/conceptmap-operation-translate.html.
Parameters we accept but do not act on (``date``, ``displayLanguage``…) are listed as ignored;
any other name is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from terminology.errors import InvalidRequest
from terminology.service import Terminology

# Query-string converters per parameter type (POSTed Parameters already carry typed values)
CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "bool": lambda s: {"true": True, "false": False}[s],
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation: the method to call and ``{parameter: (keyword, type, repeats)}``."""

    method: str
    params: dict[str, tuple[str, str, bool]]
    fixed: dict[str, Any] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()


def _p(keyword: str, kind: str = "str", repeats: bool = False) -> tuple[str, str, bool]:
    return (keyword, kind, repeats)


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("CodeSystem", "lookup"): Operation("lookup", {
        "system": _p("system"), "code": _p("code"), "version": _p("version"), "coding": _p("coding", "Coding"),
        "property": _p("properties", "str", True),
    }, ignored=frozenset({"date", "displayLanguage"})),
    ("CodeSystem", "subsumes"): Operation("subsumes", {
        "system": _p("system"), "codeA": _p("code_a"), "codeB": _p("code_b"),
        "codingA": _p("coding_a", "Coding"), "codingB": _p("coding_b", "Coding"),
    }, ignored=frozenset({"version"})),
    ("CodeSystem", "validate-code"): Operation("validate_code", {
        "url": _p("url"), "codeSystem": _p("codesystem", "resource"), "code": _p("code"), "version": _p("version"),
        "display": _p("display"), "coding": _p("coding", "Coding"),
        "codeableConcept": _p("codeable_concept", "CodeableConcept"),
    }, fixed={"kind": "CodeSystem"}, ignored=frozenset({"date", "abstract", "displayLanguage"})),
    ("ValueSet", "validate-code"): Operation("validate_code", {
        "url": _p("url"), "valueSet": _p("valueset", "resource"), "code": _p("code"), "system": _p("system"),
        "systemVersion": _p("version"), "display": _p("display"), "coding": _p("coding", "Coding"),
        "codeableConcept": _p("codeable_concept", "CodeableConcept"),
    }, fixed={"kind": "ValueSet"},
        ignored=frozenset({"valueSetVersion", "context", "date", "abstract", "displayLanguage"})),
    ("ValueSet", "expand"): Operation("expand", {
        "url": _p("url"), "valueSet": _p("valueset", "resource"), "filter": _p("filter"),
        "count": _p("count", "int"), "offset": _p("offset", "int"), "activeOnly": _p("active_only", "bool"),
        "includeDesignations": _p("include_designations", "bool"),
    }, ignored=frozenset({"valueSetVersion", "context", "contextDirection", "date", "displayLanguage",
                          "excludeNested", "excludeNotForUI", "excludePostCoordinated", "limitedExpansion"})),
    ("ConceptMap", "translate"): Operation("translate", {
        "url": _p("url"), "conceptMap": _p("conceptmap", "resource"), "system": _p("system"), "code": _p("code"),
        "coding": _p("coding", "Coding"), "codeableConcept": _p("codeable_concept", "CodeableConcept"),
        "source": _p("source"), "target": _p("target"), "targetsystem": _p("target_system"),
        "reverse": _p("reverse", "bool"),
    }, ignored=frozenset({"conceptMapVersion", "version", "dependency"})),
}


def _from_parameters(resource: Mapping[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in resource.get("parameter", []):
        value = entry.get("resource")
        if value is None:
            value = next((v for k, v in entry.items() if k.startswith("value")), None)
        found.setdefault(entry.get("name", ""), []).append(value)
    return found


def _convert(name: str, kind: str, raw: Any, from_query: bool) -> Any:
    if not from_query:
        return raw
    if kind not in CONVERTERS:
        raise InvalidRequest(f"Parameter {name!r} cannot be given in the query string; POST a Parameters resource")
    try:
        return CONVERTERS[kind](raw)
    except (KeyError, ValueError) as exc:
        raise InvalidRequest(f"Parameter {name!r} has an invalid value {raw!r}") from exc


def arguments(operation: Operation, given: Mapping[str, Sequence[Any]], *, from_query: bool) -> dict[str, Any]:
    """Keyword arguments for the service method from named parameter values."""
    kwargs: dict[str, Any] = dict(operation.fixed)
    for name, values in given.items():
        if name in operation.ignored or name.startswith("_"):
            continue
        spec = operation.params.get(name)
        if spec is None:
            raise InvalidRequest(f"Unknown parameter {name!r} for ${operation.method.replace('_', '-')}")
        keyword, kind, repeats = spec
        converted = [_convert(name, kind, v, from_query) for v in values]
        if not repeats and len(converted) > 1:
            raise InvalidRequest(f"Parameter {name!r} may appear only once")
        kwargs[keyword] = converted if repeats else converted[0]
    if operation.method == "lookup" and "coding" in kwargs:
        coding = kwargs.pop("coding")
        kwargs.setdefault("system", coding.get("system"))
        kwargs.setdefault("code", coding.get("code"))
    return kwargs


def invoke(term: Terminology, resource_type: str, name: str, *, parameters: Mapping[str, Any] | None = None,
           query: Mapping[str, Sequence[str]] | None = None, instance_url: str | None = None) -> dict[str, Any]:
    """Run ``[resource_type]/$name`` (or an instance call, whose resource url is ``instance_url``)."""
    operation = OPERATIONS.get((resource_type, name.lstrip("$")))
    if operation is None:
        raise InvalidRequest(f"Operation ${name.lstrip('$')} is not defined on {resource_type}")
    if parameters is not None:
        kwargs = arguments(operation, _from_parameters(parameters), from_query=False)
    else:
        kwargs = arguments(operation, query or {}, from_query=True)
    if instance_url is not None:
        kwargs["system" if operation.method in ("lookup", "subsumes") else "url"] = instance_url
    result: dict[str, Any] = getattr(term, operation.method)(**kwargs)
    return result
