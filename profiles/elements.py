"""A StructureDefinition snapshot compiled into a tree of :class:`Rule` objects.

Every ElementDefinition (http://hl7.org/fhir/R4/elementdefinition.html) becomes one ``Rule``
holding just what validation reads, parsed once: cardinality next to the base cardinality
(``ElementDefinition.base``, so only what a profile *narrowed* is re-checked after the structural
stage), allowed types with their profiles and target profiles, fixed[x]/pattern[x],
maxLength, minValue[x]/maxValue[x], the binding, the constraints, and the slicing with its
slices. Children hang off their parent by element name; slices hang off the element they
slice (re-slices ``a/b`` off slice ``a``).

A rule without children in the snapshot takes its children from its type's definition when an
instance is walked (see :mod:`profiles.engine`), which is how a profile that says nothing below
``Patient.identifier`` still gets ``Identifier``'s rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profiles.snapshot import assign_ids

UNBOUNDED = 2**31
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One entry of ``ElementDefinition.type``."""

    code: str
    profiles: tuple[str, ...]
    target_profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Binding:
    strength: str
    value_set: str


@dataclass(frozen=True, slots=True)
class Invariant:
    """One ``ElementDefinition.constraint`` (http://hl7.org/fhir/R4/elementdefinition.html#interpretation)."""

    key: str
    severity: str
    human: str
    expression: str
    source: str
    best_practice: bool = False
    """Marked with the elementdefinition-bestpractice extension (a guideline, e.g. dom-6)."""


ELE_1 = ("ele-1", "hasValue() or (children().count() > id.count())")
"""ele-1 is on every element; the walk checks it inline instead of as an invariant."""
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


@dataclass(frozen=True, slots=True)
class Discriminator:
    type: str
    path: str


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    ordered: bool
    rules: str


class Rule:
    """One compiled ElementDefinition of one StructureDefinition."""

    __slots__ = (
        "base_max",
        "base_min",
        "binding",
        "children",
        "choice",
        "content_reference",
        "fixed",
        "id",
        "inert",
        "invariants",
        "is_modifier",
        "keys",
        "max",
        "max_length",
        "max_value",
        "min",
        "min_value",
        "name",
        "path",
        "pattern",
        "plans",
        "presence",
        "profile",
        "slice_name",
        "slices",
        "slicing",
        "stem",
        "type_codes",
        "types",
        "value_checks",
    )

    def __init__(self, element: dict[str, Any], profile: str) -> None:
        self.profile = profile
        self.id: str = element["id"]
        self.path: str = element["path"]
        self.name = self.path.rsplit(".", 1)[-1]
        self.choice = self.name.endswith("[x]")
        self.stem = self.name[:-3] if self.choice else self.name
        self.slice_name: str | None = element.get("sliceName")
        self.min = int(element.get("min", 0))
        self.max = _max(element.get("max", "*"))
        base = element.get("base") or {}
        self.base_min = int(base.get("min", self.min))
        self.base_max = _max(base.get("max", element.get("max", "*")))
        self.types = tuple(_type_ref(t) for t in element.get("type", ()) if isinstance(t, dict) and "code" in t)
        self.type_codes = frozenset(t.code for t in self.types)
        self.fixed = self.pattern = self.min_value = self.max_value = None
        for key, value in element.items():
            if key.startswith("fixed"):
                self.fixed = (key[5:], value)
            elif key.startswith("pattern"):
                self.pattern = (key[7:], value)
            elif key.startswith("minValue"):
                self.min_value = (key[8:], value)
            elif key.startswith("maxValue"):
                self.max_value = (key[8:], value)
        self.max_length: int | None = element.get("maxLength")
        binding = element.get("binding") or {}
        value_set = binding.get("valueSet") or binding.get("valueSetReference", {}).get("reference")
        self.binding = Binding(binding.get("strength", ""), value_set) if isinstance(value_set, str) else None
        self.invariants = tuple(
            Invariant(c["key"], c.get("severity", "error"), c.get("human", ""), c["expression"], c.get("source", ""),
                      any(e.get("url") == BEST_PRACTICE and e.get("valueBoolean") for e in c.get("extension", ())))
            for c in element.get("constraint", ())
            if isinstance(c, dict) and c.get("expression") and "key" in c and (c["key"], c["expression"]) != ELE_1)
        slicing = element.get("slicing")
        self.slicing = _slicing(slicing) if isinstance(slicing, dict) else None
        self.slices: list[Rule] = []
        self.children: dict[str, Rule] = {}
        self.content_reference: str | None = element.get("contentReference")
        self.is_modifier = bool(element.get("isModifier"))
        self.value_checks = bool(self.fixed or self.pattern or self.max_length is not None or self.min_value
                                 or self.max_value or (self.binding is not None
                                                       and self.binding.strength in ("required", "extensible")))
        """Whether the rule has checks other than invariants (so a walk can skip rules that have none)."""
        self.plans: dict[str | None, Any] = {}
        """Per concrete type: how to walk below an item of that type (built by the engine)."""
        self.inert: list[bool | None] = [None, None]
        """Whether nothing below this rule needs checking, [without, with] invariants (engine)."""
        self.keys: dict[str, tuple[Rule, str | None]] | None = None
        """JSON key -> (child rule, concrete type) for this rule's children; built on first walk."""
        self.presence: tuple[Rule, ...] | None = None
        """Children whose cardinality must be checked even when absent (narrowed min, required slices)."""

    def __repr__(self) -> str:
        return f"Rule({self.id} {self.min}..{_show_max(self.max)})"

    @property
    def cardinality(self) -> str:
        return f"{self.min}..{_show_max(self.max)}"


def _max(value: Any) -> int:
    return UNBOUNDED if value == "*" or value is None else int(value)


def _show_max(value: int) -> str:
    return "*" if value >= UNBOUNDED else str(value)


def _type_ref(t: dict[str, Any]) -> TypeRef:
    code = str(t["code"])
    if code.startswith(SYSTEM_PREFIX):
        for ext in t.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXTENSION:
                code = str(ext.get("valueUrl") or ext.get("valueString") or code)
                break
        else:
            code = code[len(SYSTEM_PREFIX):].lower() if code.endswith(("String", "Boolean")) else code
    return TypeRef(code, tuple(t.get("profile", ())), tuple(t.get("targetProfile", ())))


def _slicing(slicing: dict[str, Any]) -> Slicing:
    discriminators = tuple(Discriminator(d.get("type", "value"), d.get("path", "$this"))
                           for d in slicing.get("discriminator", ()) if isinstance(d, dict))
    return Slicing(discriminators, bool(slicing.get("ordered")), slicing.get("rules", "open"))


@dataclass(slots=True)
class CompiledProfile:
    """A StructureDefinition ready for validation: its root rule and every rule by element id."""

    url: str
    type: str
    name: str
    kind: str
    root: Rule
    by_id: dict[str, Rule]
    definition: dict[str, Any]

    def rule_for_path(self, path: str) -> Rule | None:
        """The unsliced rule with this path (``contentReference`` targets ``#Questionnaire.item``)."""
        return self.by_id.get(path)


def compile_profile(sd: dict[str, Any], elements: list[dict[str, Any]]) -> CompiledProfile:
    """Compile snapshot ``elements`` of ``sd`` into a rule tree."""
    url = sd.get("url", sd.get("type", "?"))
    by_id: dict[str, Rule] = {}
    root: Rule | None = None
    for element in assign_ids(elements):
        rule = Rule(element, url)
        by_id[rule.id] = rule
        parent_id, _, last = rule.id.rpartition(".")
        name, _, slice_name = last.partition(":")
        if not parent_id and not slice_name:
            root = rule
            continue
        if slice_name:
            head, _, _ = slice_name.rpartition("/")
            sliced_id = (parent_id + "." if parent_id else "") + name + (":" + head if head else "")
            sliced = by_id.get(sliced_id)
            if sliced is not None:
                sliced.slices.append(rule)
            continue
        parent = by_id.get(parent_id)
        if parent is not None:
            parent.children[name] = rule
    if root is None:
        raise ValueError(f"{url} has no root element")
    return CompiledProfile(url, str(sd.get("type", root.path)), str(sd.get("name", url)), str(sd.get("kind", "")),
                           root, by_id, sd)

