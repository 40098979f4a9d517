"""ValueSet ``compose.include.filter`` evaluation against a compiled code system.

Operators are R4's filter-operator list (http://hl7.org/fhir/R4/valueset-filter-operator.html):
``=``, ``is-a``, ``descendent-of``, ``is-not-a``, ``regex``, ``in``, ``not-in``, ``generalizes``,
``exists``. Hierarchy operators work on the ``concept`` (or ``code``) property; the others work
on any declared property and on the pseudo-properties of :mod:`terminology.codesystem`.
Each operator is one function in :data:`OPERATORS`; a filter returns the set of matching codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from terminology.codesystem import CodeSystemView
from terminology.errors import InvalidRequest, NotSupported

HIERARCHY_PROPERTIES = frozenset({"concept", "code"})


def _hierarchy(cs: CodeSystemView, prop: str, op: str) -> None:
    if prop not in HIERARCHY_PROPERTIES:
        raise NotSupported(f"Filter {prop!r} {op} is not supported: {op} applies to the concept hierarchy")


def _is_a(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    _hierarchy(cs, prop, "is-a")
    concept = cs.get(value)
    return {concept.code, *cs.descendants(concept.code)} if concept else set()


def _descendent_of(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    _hierarchy(cs, prop, "descendent-of")
    return set(cs.descendants(value))


def _is_not_a(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    return set(cs.concepts) - _is_a(cs, prop, value)


def _generalizes(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    _hierarchy(cs, prop, "generalizes")
    concept = cs.get(value)
    return {concept.code, *cs.ancestors(concept.code)} if concept else set()


def _equals(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    return {code for code, c in cs.concepts.items() if value in c.values(prop)}


def _regex(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise InvalidRequest(f"Filter regex {value!r} is not a valid regular expression: {exc}") from exc
    return {code for code, c in cs.concepts.items() if any(pattern.fullmatch(v) for v in c.values(prop))}


def _split(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def _in(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    wanted = _split(value)
    return {code for code, c in cs.concepts.items() if wanted.intersection(c.values(prop))}


def _not_in(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    return set(cs.concepts) - _in(cs, prop, value)


def _exists(cs: CodeSystemView, prop: str, value: str) -> set[str]:
    if value not in ("true", "false"):
        raise InvalidRequest(f"Filter {prop!r} exists needs the value true or false, not {value!r}")
    having = {code for code, c in cs.concepts.items() if c.values(prop)}
    return having if value == "true" else set(cs.concepts) - having


OPERATORS: dict[str, Callable[[CodeSystemView, str, str], set[str]]] = {
    "=": _equals,
    "is-a": _is_a,
    "descendent-of": _descendent_of,
    "is-not-a": _is_not_a,
    "regex": _regex,
    "in": _in,
    "not-in": _not_in,
    "generalizes": _generalizes,
    "exists": _exists,
}


def apply_filter(cs: CodeSystemView, prop: str, op: str, value: str) -> set[str]:
    """Codes of ``cs`` matching one ``{property, op, value}`` filter."""
    operator = OPERATORS.get(op)
    if operator is None:
        raise NotSupported(f"Filter operator {op!r} is not one of R4's: {', '.join(OPERATORS)}")
    return operator(cs, prop, value)
