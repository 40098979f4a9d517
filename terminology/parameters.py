"""Build the FHIR ``Parameters`` resources the terminology operations answer with.

Output parameter names and types follow the R4 OperationDefinitions:
http://hl7.org/fhir/R4/codesystem-operation-lookup.html,
http://hl7.org/fhir/R4/codesystem-operation-subsumes.html,
http://hl7.org/fhir/R4/valueset-operation-validate-code.html,
http://hl7.org/fhir/R4/conceptmap-operation-translate.html. Pure functions over typed results.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from terminology.codesystem import VALUE_KEYS, CodeSystemView, Concept
from terminology.conceptmap import Translation

Param = dict[str, Any]


def parameters(items: Iterable[Param]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(items)}


def value(name: str, kind: str, val: Any) -> Param:
    """One ``{name, value[x]}`` parameter; ``kind`` is the FHIR type suffix (``String``, ``Code``...)."""
    return {"name": name, f"value{kind}": val}


def part(name: str, parts: Iterable[Param]) -> Param:
    return {"name": name, "part": list(parts)}


def _coding(system: str | None, code: str | None, display: str | None, version: str | None = None) -> dict[str, str]:
    coding = {"system": system, "version": version, "code": code, "display": display}
    return {k: v for k, v in coding.items() if v is not None}


def lookup_result(cs: CodeSystemView, concept: Concept, properties: Iterable[str] | None) -> dict[str, Any]:
    """``$lookup`` output: name, version, display, designations and the requested properties.

    Without ``properties`` we return every property the concept has plus ``parent``, ``child``,
    ``definition`` and ``inactive`` (the R4 standard properties); with a list, only those (and
    designations only when ``designation`` is listed).
    """
    wanted = set(properties) if properties is not None else None
    out: list[Param] = [value("name", "String", cs.name)]
    if cs.version:
        out.append(value("version", "String", cs.version))
    out.append(value("display", "String", concept.display or concept.code))
    if wanted is None or "designation" in wanted:
        for d in concept.designations:
            parts = []
            if d.get("language"):
                parts.append(value("language", "Code", d["language"]))
            if d.get("use"):
                parts.append(value("use", "Coding", d["use"]))
            parts.append(value("value", "String", d.get("value", "")))
            out.append(part("designation", parts))

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if concept.definition and want("definition"):
        out.append(part("property", [value("code", "Code", "definition"),
                                     value("value", "String", concept.definition)]))
    for parent in concept.parents:
        if want("parent"):
            out.append(_code_property(cs, "parent", parent))
    for child in concept.children:
        if want("child"):
            out.append(_code_property(cs, "child", child))
    if want("inactive") and not any(p.get("code") == "inactive" for p in concept.properties):
        out.append(part("property", [value("code", "Code", "inactive"), value("value", "Boolean", concept.inactive)]))
    for prop in concept.properties:
        name = prop.get("code")
        if not name or name in ("parent", "child") or not want(name):
            continue
        key = next((k for k in VALUE_KEYS if k in prop), None)
        if key is not None:
            out.append(part("property", [value("code", "Code", name), {"name": "value", key: prop[key]}]))
    return parameters(out)


def _code_property(cs: CodeSystemView, name: str, code: str) -> Param:
    other = cs.get(code)
    parts = [value("code", "Code", name), value("value", "Code", code)]
    if other is not None and other.display:
        parts.append(value("description", "String", other.display))
    return part("property", parts)


def subsumes_result(outcome: str) -> dict[str, Any]:
    return parameters([value("outcome", "Code", outcome)])


def validate_result(result: bool | None, message: str, display: str | None) -> dict[str, Any]:
    """``$validate-code`` output.

    ``result`` is left out when the answer is unknown (a code system we do not carry): R4 makes
    it 1..1, but a ``false`` would tell the client the code is wrong when we simply cannot tell;
    ``message`` always says why.
    """
    out: list[Param] = []
    if result is not None:
        out.append(value("result", "Boolean", result))
    if message:
        out.append(value("message", "String", message))
    if display:
        out.append(value("display", "String", display))
    return parameters(out)


def translate_result(matches: list[Translation], message: str | None) -> dict[str, Any]:
    out: list[Param] = [value("result", "Boolean", any(m.is_match for m in matches))]
    if message:
        out.append(value("message", "String", message))
    for m in matches:
        parts = [value("equivalence", "Code", m.equivalence)]
        if m.code is not None:
            parts.append(value("concept", "Coding", _coding(m.system, m.code, m.display, m.version)))
        parts.append(value("source", "Uri", m.source))
        out.append(part("match", parts))
    return parameters(out)
