"""The shape of FHIR types, read from StructureDefinition snapshots.

A *node* is a place in a type tree that can have children: a type root (``Patient``,
``HumanName``) or a backbone element inside one (``Patient.contact``). For a node,
:meth:`TypeModel.children` lists its elements by JSON name, choice types expanded
(``valueQuantity`` -> ``value[x]`` typed Quantity). The validator walks resources with it and
the search indexer uses it to know what type a FHIRPath step lands on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from profiles.definitions import Definitions, core

SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
BACKBONE = frozenset({"BackboneElement", "Element"})


@dataclass(frozen=True)
class Node:
    """A place that has children: ``(defining type, element path)``; a type root has path == type."""

    owner: str
    path: str


@dataclass(frozen=True)
class Element:
    """One child element as seen from JSON (a choice type appears once per concrete type)."""

    json_name: str
    path: str
    min: int
    max: str
    type: str
    """The concrete type code of this JSON key ("Quantity", "string", "BackboneElement", "Resource")."""
    target_profiles: tuple[str, ...]
    child_node: Node | None
    """Where this element's own children are defined (None for primitives)."""
    choice: bool
    definition: dict[str, Any]

    @property
    def is_array(self) -> bool:
        return self.max != "1" and self.max != "0"


def _type_code(t: dict[str, Any]) -> str:
    code = t["code"]
    return SYSTEM_TYPES.get(code, code)


class TypeModel:
    """Children of every node, computed on first use and cached."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._children: dict[Node, dict[str, Element]] = {}

    def root(self, type_name: str) -> Node:
        return Node(type_name, type_name)

    def is_primitive(self, type_name: str) -> bool:
        return type_name in self.definitions.primitive_types or type_name in SYSTEM_TYPES.values()

    def _snapshot(self, owner: str) -> list[dict[str, Any]]:
        sd = self.definitions.structure_definition(owner)
        if sd is None:
            raise KeyError(owner)
        return sd["snapshot"]["element"]

    def children(self, node: Node) -> dict[str, Element]:
        found = self._children.get(node)
        if found is None:
            found = self._build(node)
            self._children[node] = found
        return found

    def child(self, node: Node, json_name: str) -> Element | None:
        return self.children(node).get(json_name)

    def _build(self, node: Node) -> dict[str, Element]:
        elements = self._snapshot(node.owner)
        prefix = node.path + "."
        has_children = {e["path"].rsplit(".", 1)[0] for e in elements if "." in e["path"]}
        out: dict[str, Element] = {}
        for e in elements:
            path = e["path"]
            if not path.startswith(prefix) or "." in path[len(prefix):]:
                continue
            name = path[len(prefix):]
            if "contentReference" in e:
                ref_path = e["contentReference"].lstrip("#")
                out[name] = Element(name, path, e.get("min", 0), e.get("max", "*"), "BackboneElement", (),
                                    Node(node.owner, ref_path), False, e)
                continue
            types = e.get("type", [])
            choice = name.endswith("[x]")
            base = name[:-3] if choice else name
            for t in types:
                code = _type_code(t)
                if code in BACKBONE and path in has_children:
                    child: Node | None = Node(node.owner, path)
                elif self.is_primitive(code):
                    child = None
                else:
                    child = Node(code, code)
                json_name = base + code[0].upper() + code[1:] if choice else base
                out[json_name] = Element(json_name, path, e.get("min", 0), e.get("max", "*"), code,
                                         tuple(t.get("targetProfile", ())), child, choice, e)
        return out


@cache
def core_model() -> TypeModel:
    """The type model of the R4 core definitions."""
    return TypeModel(core())
