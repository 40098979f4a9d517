"""Required bindings to enumerable value sets, checked by the structural stage on every write.

A code outside the value set of a *required* binding (``Patient.gender = "robot"``) makes a
resource non-conformant (http://hl7.org/fhir/R4/terminologies.html#required), and clients that
map such elements onto enums (HAPI) cannot even read it back. When the value set is a closed list
of codes — most required bindings of R4 are — the check is one set lookup, cheap enough for the
structural stage that runs on every write rather than only in the profile engine.

:class:`RequiredBindings` is compiled lazily per :class:`~profiles.model.Node` (a type root such as
``HumanName`` or a backbone element such as ``Patient.contact``): the JSON keys of that node bound
with strength ``required`` to a value set the terminology can list completely, on a ``code``,
``Coding`` or ``CodeableConcept`` element, each with its allowed codes. Recursive types
(``Identifier.assigner`` is a Reference holding an Identifier) rule out one flat list of paths per
resource type; the structural walk already visits every node of the instance, so it asks the
table of the node it is in. Open-ended value sets (mimetypes, UCUM, currencies) and those the
terminology does not carry are left out: not errors here, the profile engine notes them.

The verdict and its message are :func:`profiles.bindings.binding_verdict`, the profile engine's,
so ``$validate``, ``yidang validate`` and a write report the same issue for the same element.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from profiles.bindings import CodeCheck, CodeResult, binding_verdict
from profiles.issues import ValidationIssue
from profiles.model import Node, TypeModel, core_model

Usable = tuple[frozenset[tuple[str, str]], frozenset[str]]
"""A closed value set's accepted ``(system, code)`` pairs and the codes accepted without a system."""
Enumerator = Callable[[str], Usable | None]
"""Value set url (``|version`` allowed) -> its codes, or None when they cannot be listed completely
(``terminology.Terminology.enumerate``)."""
Generation = Callable[[], object]
"""What changes whenever the enumerator's answers may have (``lambda: terminology.generation``)."""
CODED_TYPES = frozenset({"code", "Coding", "CodeableConcept"})
"""Types whose value a required binding constrains here (Quantity.code is bound by pattern, not here)."""
_YES = CodeCheck(True, "")
_NO = CodeCheck(False, "")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True, eq=False)
class Bound:
    """One element with a required binding to a value set that can be listed, and that list."""

    path: str
    """The element definition path (``Patient.gender``, ``Observation.value[x]``), as messages name it."""
    value_set: str
    type: str
    """``code``, ``Coding`` or ``CodeableConcept``: how the JSON value offers its codes."""
    pairs: frozenset[tuple[str, str]]
    """Accepted ``(system, code)``."""
    bare: frozenset[str]
    """Codes accepted without a system (a ``code`` element, a Coding without ``system``)."""

    def answer(self, system: str | None, code: str, display: str | None = None) -> CodeResult:
        """Membership, in the form :func:`~profiles.bindings.binding_verdict` asks for it."""
        return _YES if (code in self.bare if system is None else (system, code) in self.pairs) else _NO

    def check(self, value: Any, expression: str) -> ValidationIssue | None:
        """The issue for one occurrence (``value`` its JSON), or None when it conforms.

        The usual case — a string code, or a coding, in the list — is answered with one set
        lookup; anything else goes to the engine's verdict for the answer and the message."""
        cls = value.__class__
        if cls is str:
            if self.type == "code" and value in self.bare:
                return None
        elif cls is dict:
            if self.type == "Coding":
                if _accepted(value, self):
                    return None
            elif self.type == "CodeableConcept":
                codings = value.get("coding")
                if codings.__class__ is list and any(_accepted(c, self) for c in codings):
                    return None
        verdict = binding_verdict(self.path, self.value_set, "required", self.type, value, self.answer)
        return ValidationIssue(*verdict, expression) if verdict is not None else None


def _accepted(coding: Any, bound: Bound) -> bool:
    """Whether one Coding's (system, code) is in the list (anything malformed: no)."""
    if coding.__class__ is not dict:
        return False
    system, code = coding.get("system"), coding.get("code")
    if code.__class__ is not str:
        return False
    return code in bound.bare if system is None else system.__class__ is str and (system, code) in bound.pairs


class RequiredBindings:
    """Per node, the JSON keys whose codes must come from an enumerable value set (built lazily, cached).

    Built for one terminology: when its ``generation`` moves (a ValueSet or CodeSystem changed
    through the API), :meth:`refresh` forgets the tables, so the next resource is checked against
    the new lists.
    """

    def __init__(self, model: TypeModel, enumerate_codes: Enumerator, generation: Generation = lambda: None) -> None:
        self.model = model
        self.enumerate = enumerate_codes
        self.generation = generation
        self._seen = generation()
        self._nodes: dict[str, dict[str, Bound] | None] = {}
        self._lock = threading.Lock()
        self.token = object()
        """Replaced whenever the tables are forgotten, so copies kept elsewhere (the structural tables') are
        known to be stale."""

    def refresh(self) -> None:
        """Forget the tables if the terminology changed since they were built (once per resource)."""
        now = self.generation()
        if now != self._seen:
            with self._lock:
                self._nodes = {}
                self._seen = now
                self.token = object()

    def of(self, node: Node) -> dict[str, Bound] | None:
        """JSON key -> :class:`Bound` for the elements of ``node`` checked here; None when there are none."""
        found = self._nodes.get(node.path, _UNSET)
        if found is _UNSET:
            with self._lock:
                found = self._compile(node)
                self._nodes[node.path] = found  # a node's path names it: backbone paths start with their type
        return found  # type: ignore[no-any-return]

    def _compile(self, node: Node) -> dict[str, Bound] | None:
        out: dict[str, Bound] = {}
        for name, element in self.model.children(node).items():
            binding = element.definition.get("binding")
            if element.type not in CODED_TYPES or not isinstance(binding, dict):
                continue
            value_set = binding.get("valueSet")
            if binding.get("strength") != "required" or not isinstance(value_set, str):
                continue
            usable = self.enumerate(value_set)
            if usable is not None:
                out[name] = Bound(element.path, value_set, element.type, *usable)
        return out or None

    def sites(self, type_name: str, *, depth: int = 3) -> Iterator[tuple[str, Bound]]:
        """(JSON path, binding) reachable from a type within ``depth`` complex steps, for reports and tests.

        The walk does not use this (types nest recursively); it shows what a resource type is checked for.
        """
        yield from self._sites(self.model.root(type_name), type_name, depth)

    def _sites(self, node: Node, prefix: str, depth: int) -> Iterator[tuple[str, Bound]]:
        for name, bound in (self.of(node) or {}).items():
            yield f"{prefix}.{name}", bound
        if depth <= 0:
            return
        for name, element in self.model.children(node).items():
            if element.child_node is not None and element.type not in ("Resource", "Extension"):
                yield from self._sites(element.child_node, f"{prefix}.{name}", depth - 1)


def for_terminology(terminology: Any, model: TypeModel | None = None) -> RequiredBindings:
    """The table over a ``terminology.Terminology`` (its ``enumerate`` and ``generation``)."""
    return RequiredBindings(model if model is not None else core_model(), terminology.enumerate,
                            lambda: terminology.generation)


@cache
def default_required_bindings() -> RequiredBindings:
    """The table for the core definitions over the shipped terminology (opened on first use)."""
    from terminology import default_terminology

    return for_terminology(default_terminology())
