"""Compartments (http://hl7.org/fhir/R4/compartmentdefinition.html) as search conditions. Pure.

A CompartmentDefinition lists, per resource type, the reference parameters that put a resource
in the compartment of its owner: an Observation is in ``Patient/123``'s compartment when its
``subject`` *or* its ``performer`` refers to ``Patient/123``. :func:`membership` lowers that to an
:class:`~server.search.model.Or` of reference ``Match`` es, so compartment search
(``GET Patient/123/Observation?code=…``, http://hl7.org/fhir/R4/search.html#compartments) and
``Patient/$everything`` are ordinary queries that every store already answers with its indexes.

The owner belongs to its own compartment: the R4 definitions say so for Encounter, Practitioner
and RelatedPerson with the ``{def}`` marker, and for Patient the ``$everything`` operation
(http://hl7.org/fhir/R4/patient-operation-everything.html) returns the patient itself, so the
owner is in the compartment for every compartment type here (documented choice; R5 makes it
explicit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from profiles.definitions import Definitions
from server.search.model import And, Condition, FieldTest, Match, Or, ResourceTest

COMPARTMENTS = ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device")
"""The compartment types R4 defines (compartmentdefinition.html#table)."""
OWNER = "{def}"
"""The CompartmentDefinition marker for "the owner itself"."""


@dataclass(frozen=True, slots=True)
class Compartment:
    """One compartment type: its members and the parameters that make them members."""

    code: str
    members: Mapping[str, tuple[str, ...]]
    """Resource type -> reference parameter codes (``{def}``: the owner itself)."""

    def types(self) -> tuple[str, ...]:
        """Every resource type that can be in the compartment, sorted."""
        return tuple(sorted(self.members))

    def contains_type(self, resource_type: str) -> bool:
        return resource_type in self.members


@cache
def compartment(definitions: Definitions, code: str) -> Compartment | None:
    """The compartment ``code`` (``Patient``, ``Encounter`` …) of ``definitions``; None when
    ``code`` is not a compartment type."""
    if code not in COMPARTMENTS:
        return None
    resource = definitions.compartment(code)
    members: dict[str, tuple[str, ...]] = {}
    for entry in resource.get("resource", ()):
        params = tuple(entry.get("param", ()))
        if entry.get("code") == code and OWNER not in params:
            params = (OWNER, *params)
        if params:
            members[entry["code"]] = params
    members.setdefault(code, (OWNER,))
    return Compartment(code, members)


def _reference(param: str, owner_type: str, owner_id: str | None) -> Match:
    tests = [FieldTest("ref_type", "eq", owner_type)]
    if owner_id is not None:
        tests.append(FieldTest("ref_id", "eq", owner_id))
    return Match("reference", param, tuple(tests))


def _of_types(types: Sequence[str], all_types: Sequence[str], cond: Condition) -> Condition:
    """``cond`` limited to ``types`` (no test when the query has no other types)."""
    if set(all_types) <= set(types):
        return cond
    test = ResourceTest("type", "eq", types[0]) if len(types) == 1 else ResourceTest("type", "in", tuple(types))
    return And((test, cond))


def membership(comp: Compartment, owner_id: str | None, types: Sequence[str]) -> Condition:
    """Resources of ``types`` in the compartment of ``comp.code/owner_id`` (of any owner of that
    type when ``owner_id`` is None, for type-level ``$everything``).

    Types outside the compartment never match. Branches are grouped by parameter code, each
    limited to the types that list it, so a parameter that only some types use for membership
    (``performer`` for Observation but not for DiagnosticReport) never admits the others."""
    types = [t for t in dict.fromkeys(types) if comp.contains_type(t)]
    by_param: dict[str, list[str]] = {}
    for t in types:
        for param in comp.members[t]:
            by_param.setdefault(param, []).append(t)
    branches: list[Condition] = []
    for param, param_types in by_param.items():
        if param == OWNER:
            owner: Condition = (ResourceTest("type", "eq", comp.code) if owner_id is None
                                else And((ResourceTest("type", "eq", comp.code), ResourceTest("id", "eq", owner_id))))
            branches.append(owner)
        else:
            branches.append(_of_types(param_types, types, _reference(param, comp.code, owner_id)))
    if not branches:
        return ResourceTest("id", "in", ())
    return branches[0] if len(branches) == 1 else Or(tuple(branches))
