"""A CodeSystem compiled for fast questions: concept by code, hierarchy, property values.

http://hl7.org/fhir/R4/codesystem.html. The hierarchy is read from all three places R4 puts it:

- nested ``concept`` (the usual form, e.g. condition-clinical ``active`` > ``recurrence``);
- the ``parent`` / ``subsumedBy`` properties (child -> parent, used by imported tables);
- the ``child`` property (parent -> child), which the v3 code systems use for their
  poly-hierarchy (``v3-ActCode`` ``COVMX`` has children outside its nesting).

Concept status follows http://hl7.org/fhir/R4/codesystem-concept-properties.html: a concept is
inactive when its ``inactive`` property is true or its ``status`` is ``retired``/``inactive``;
``deprecated`` concepts are still active (discouraged, not withdrawn) but flagged so a check can
warn; a concept is abstract when ``notSelectable`` (or ``abstract``) is true.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HIERARCHY_UP = ("parent", "subsumedBy")
HIERARCHY_DOWN = ("child",)
INACTIVE_STATUS = frozenset({"retired", "inactive"})
VALUE_KEYS = (
    "valueCode", "valueString", "valueBoolean", "valueInteger", "valueDecimal", "valueDateTime", "valueCoding",
)


def property_text(prop: dict[str, Any]) -> str | None:
    """A concept property's value as the string $expand filters compare against."""
    for key in VALUE_KEYS:
        if key in prop:
            value = prop[key]
            if key == "valueBoolean":
                return "true" if value else "false"
            if key == "valueCoding":
                return value.get("code")
            return str(value)
    return None


@dataclass(slots=True)
class Concept:
    """One concept of a code system, with its hierarchy links resolved."""

    code: str
    display: str | None
    definition: str | None
    designations: list[dict[str, Any]]
    properties: list[dict[str, Any]]
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    inactive: bool = False
    abstract: bool = False
    deprecated: bool = False

    def values(self, name: str) -> list[str]:
        """String values of a property for filter evaluation.

        Besides the properties the CodeSystem declares, every concept answers the pseudo-properties
        ``code``/``concept``, ``display``, ``definition``, ``parent``, ``child`` and ``inactive``
        (http://hl7.org/fhir/R4/codesystem-concept-properties.html).
        """
        if name in ("code", "concept"):
            return [self.code]
        if name == "display":
            return [self.display] if self.display else []
        if name == "definition":
            return [self.definition] if self.definition else []
        if name == "parent":
            return list(self.parents)
        if name == "child":
            return list(self.children)
        found = [text for p in self.properties if p.get("code") == name and (text := property_text(p)) is not None]
        if not found and name == "inactive":
            return ["true" if self.inactive else "false"]
        return found

    def displays(self) -> Iterable[str]:
        """Every text that counts as a valid display: the display and each designation value."""
        if self.display:
            yield self.display
        for d in self.designations:
            if d.get("value"):
                yield d["value"]


class CodeSystemView:
    """Compiled, read-only view of one CodeSystem resource."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.url: str = resource["url"]
        self.version: str | None = resource.get("version")
        self.name: str = resource.get("title") or resource.get("name") or self.url
        self.content: str = resource.get("content", "complete")
        self.case_sensitive: bool = resource.get("caseSensitive", True) is not False
        self.concepts: dict[str, Concept] = {}
        self.properties: dict[str, dict[str, Any]] = {p["code"]: p for p in resource.get("property", [])}
        self._walk(resource.get("concept", []), None)
        self._link_properties()
        self.hierarchical = any(c.parents for c in self.concepts.values())
        self._folded = None if self.case_sensitive else {code.casefold(): code for code in self.concepts}
        self._descendants: dict[str, frozenset[str]] = {}
        self._ancestors: dict[str, frozenset[str]] = {}

    @property
    def complete(self) -> bool:
        """Whether a code absent from this resource is really not in the code system."""
        return self.content == "complete"

    def _walk(self, items: list[dict[str, Any]], parent: str | None) -> None:
        for item in items:
            code = item.get("code")
            if code is None:
                continue
            props = item.get("property", [])
            status = {p.get("valueCode") for p in props if p.get("code") == "status"}
            flags = {p["code"] for p in props if p.get("valueBoolean") is True}
            concept = self.concepts.get(code)
            if concept is None:
                concept = Concept(
                    code=code,
                    display=item.get("display"),
                    definition=item.get("definition"),
                    designations=item.get("designation", []),
                    properties=props,
                    inactive="inactive" in flags or bool(status & INACTIVE_STATUS),
                    abstract="notSelectable" in flags or "abstract" in flags,
                    deprecated="deprecated" in status,
                )
                self.concepts[code] = concept
            if parent is not None:
                self._link(parent, code)
            self._walk(item.get("concept", []), code)

    def _link(self, parent: str, child: str) -> None:
        if parent == child or parent not in self.concepts or child not in self.concepts:
            return
        up, down = self.concepts[child].parents, self.concepts[parent].children
        if parent not in up:
            up.append(parent)
        if child not in down:
            down.append(child)

    def _link_properties(self) -> None:
        for concept in list(self.concepts.values()):
            for prop in concept.properties:
                other = prop.get("valueCode") or (prop.get("valueCoding") or {}).get("code")
                if other is None:
                    continue
                if prop.get("code") in HIERARCHY_UP:
                    self._link(other, concept.code)
                elif prop.get("code") in HIERARCHY_DOWN:
                    self._link(concept.code, other)

    def get(self, code: str) -> Concept | None:
        """The concept with this code (case-folded when the system is not case sensitive)."""
        found = self.concepts.get(code)
        if found is None and self._folded is not None:
            canonical = self._folded.get(code.casefold())
            found = self.concepts.get(canonical) if canonical else None
        return found

    def descendants(self, code: str) -> frozenset[str]:
        """All codes below ``code`` (transitively), excluding ``code``; memoized per code."""
        found = self._descendants.get(code)
        if found is None:
            found = self._closure(code, "children")
            self._descendants[code] = found
        return found

    def ancestors(self, code: str) -> frozenset[str]:
        """All codes above ``code`` (transitively), excluding ``code``; memoized per code."""
        found = self._ancestors.get(code)
        if found is None:
            found = self._closure(code, "parents")
            self._ancestors[code] = found
        return found

    def _closure(self, code: str, direction: str) -> frozenset[str]:
        start = self.get(code)
        if start is None:
            return frozenset()
        seen: set[str] = set()
        stack = list(getattr(start, direction))
        while stack:
            current = stack.pop()
            if current in seen or current == start.code:
                continue
            seen.add(current)
            stack.extend(getattr(self.concepts[current], direction))
        return frozenset(seen)

    def subsumes(self, code_a: str, code_b: str) -> str:
        """The $subsumes outcome of A against B: equivalent | subsumes | subsumed-by | not-subsumed."""
        a, b = self.get(code_a), self.get(code_b)
        assert a is not None and b is not None, "callers check existence first"
        if a.code == b.code:
            return "equivalent"
        if b.code in self.descendants(a.code):
            return "subsumes"
        if a.code in self.descendants(b.code):
            return "subsumed-by"
        return "not-subsumed"
