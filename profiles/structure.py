"""The structural walk: a resource's JSON against the R4 core StructureDefinitions.

This is the first, always-on stage of :class:`profiles.validator.Validator`. It checks what the
JSON representation rules (http://hl7.org/fhir/R4/json.html) and the core element definitions
(http://hl7.org/fhir/R4/elementdefinition.html) say about shape, in one pass over the resource:

- every key is a known element (``resourceType`` only at the root of a resource);
- each element has the JSON kind its type needs, is an array exactly when its max cardinality is
  above 1, and the array is not longer than that max;
- required elements (min ≥ 1) are present; a primitive present only as ``_name`` counts;
- at most one variant of a choice element (``value[x]``) is present;
- primitives satisfy their type's lexical rules (:mod:`profiles.primitives`);
- ``_name`` siblings of primitives are Elements (id, extension), arrays of primitives line up
  with their ``_name`` arrays, and ``null`` appears only as an alignment placeholder;
- no empty object, array or string;
- ``Resource``-typed elements (``contained``, ``Bundle.entry.resource``,
  ``Parameters.parameter.resource``) are validated as the type their ``resourceType`` names;
  contained resources have an id and contain nothing themselves (dom-2).

Speed matters because the server validates every write: the element definitions of each
:class:`~profiles.model.Node` are compiled once into a :class:`Table` of :class:`Slot` objects,
paths are only built for objects that are descended into, and issue messages only on failure.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from profiles.issues import ERROR, FATAL, INVALID, REQUIRED, STRUCTURE, Severity, ValidationIssue
from profiles.model import Element, Node, TypeModel
from profiles.primitives import Check, json_kind, primitive_checks
from profiles.required import Bound, RequiredBindings

PRIMITIVE, COMPLEX, RESOURCE = 0, 1, 2
UNBOUNDED = 2**31
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
ELEMENT = Node("Element", "Element")


@dataclass(frozen=True, slots=True)
class ResourceSite:
    """A resource the walk found and knows the type of: the top one or one nested inside it."""

    resource: dict[str, Any]
    type: str
    expression: str
    """Where it is, e.g. ``Bundle.entry[2].resource``; the type name for the top resource."""
    contained: bool


class Slot:
    """One JSON key of a node, with everything the walk needs precomputed."""

    __slots__ = ("array", "check", "contained", "group", "kind", "max", "name", "node", "table", "type",
                 "underscore")

    def __init__(self, element: Element, kind: int, type_name: str, check: Check | None,
                 contained: bool) -> None:
        self.name = element.json_name
        self.underscore = "_" + element.json_name
        self.kind = kind
        self.type = type_name
        self.check = check
        self.node = element.child_node
        self.table: Table | None = None
        self.array = element.is_array
        self.max = UNBOUNDED if element.max == "*" else int(element.max)
        self.group = element.path if element.choice else None
        self.contained = contained


class Table:
    """The compiled children of one node."""

    __slots__ = ("bound", "is_resource", "node", "required", "slots")

    def __init__(self, node: Node, slots: dict[str, Slot], required: tuple[tuple[tuple[str, ...], str], ...],
                 is_resource: bool) -> None:
        self.node = node
        self.slots = slots
        self.required = required
        """(json names that satisfy it, including ``_name`` forms; element name) per min ≥ 1 element."""
        self.is_resource = is_resource
        self.bound: tuple[object, dict[str, Bound] | None] | None = None
        """(token of the binding table it came from, its required bindings): saves a lookup per object."""


def _primitive_type(element: Element, at_resource_root: bool) -> str:
    """The FHIR primitive type of an element, seeing through FHIRPath System types.

    ``Element.id`` and ``Extension.url`` are typed ``System.String`` with the FHIR type in the
    ``structuredefinition-fhir-type`` extension. ``Resource.id`` says ``string`` there, but a
    resource id is an ``id`` (http://hl7.org/fhir/R4/resource.html#id), so it is checked as one.
    """
    if at_resource_root and element.json_name == "id":
        return "id"
    for t in element.definition.get("type", ()):
        if t["code"].startswith(SYSTEM_PREFIX):
            for ext in t.get("extension", ()):
                if ext["url"] == FHIR_TYPE_EXTENSION:
                    return str(ext.get("valueUrl") or ext.get("valueString"))
    return element.type


class Structure:
    """Compiled tables for a type model and the walk that applies them."""

    def __init__(self, model: TypeModel) -> None:
        self.model = model
        self.checks = primitive_checks(model.definitions)
        self._tables: dict[Node, Table] = {}
        self._resource_tables: dict[str, Table] = {}
        self.element_table = self.table(ELEMENT)

    # -- compilation -------------------------------------------------------------------------

    def table(self, node: Node) -> Table:
        found = self._tables.get(node)
        if found is None:
            found = self._compile(node)
            self._tables[node] = found
        return found

    def resource_table(self, type_name: Any) -> Table | None:
        """The table of a concrete resource type, or None when the name is not one."""
        if type_name.__class__ is not str:
            return None
        found = self._resource_tables.get(type_name)
        if found is None:
            definitions = self.model.definitions
            if not definitions.is_resource_type(type_name):
                return None
            sd = definitions.structure_definition(type_name)
            if sd is None or sd.get("abstract"):
                return None
            found = self.table(self.model.root(type_name))
            self._resource_tables[type_name] = found
        return found

    def _compile(self, node: Node) -> Table:
        is_resource = node.owner == node.path and self.model.definitions.is_resource_type(node.owner)
        slots: dict[str, Slot] = {}
        required: dict[str, list[str]] = {}
        for name, element in self.model.children(node).items():
            if element.type == "Resource":
                slot = Slot(element, RESOURCE, "Resource", None, is_resource and name == "contained")
            elif element.child_node is None:
                type_name = _primitive_type(element, is_resource)
                slot = Slot(element, PRIMITIVE, type_name, self.checks[type_name], False)
            else:
                slot = Slot(element, COMPLEX, element.type, None, False)
            slots[name] = slot
            if element.min > 0:
                names = required.setdefault(element.path.rsplit(".", 1)[1], [])
                names.append(name)
                if slot.kind == PRIMITIVE:
                    names.append(slot.underscore)
        return Table(node, slots, tuple((tuple(v), k) for k, v in required.items()), is_resource)

    def _link(self, slot: Slot) -> Table:
        assert slot.node is not None
        table = slot.table = self.table(slot.node)
        return table

    # -- the walk ----------------------------------------------------------------------------

    def walk(self, resource: Any, issues: list[ValidationIssue], sites: list[ResourceSite] | None,
             bindings: RequiredBindings | None = None) -> None:
        """Validate a top-level resource, appending issues and (when asked) the resources found.

        With ``bindings``, codes of elements with a required binding to an enumerable value set are
        checked too (:mod:`profiles.required`), in the same pass."""
        if resource.__class__ is not dict:
            issues.append(ValidationIssue(FATAL, INVALID, f"a resource must be a JSON object, not "
                                          f"{json_kind(resource)}", ""))
            return
        type_name: Any = resource.get("resourceType")
        table = self.resource_table(type_name) if type_name is not None else None
        if table is None:
            issues.append(_no_type(type_name, FATAL, "resourceType"))
            return
        if sites is not None:
            sites.append(ResourceSite(resource, type_name, type_name, False))
        self._object(resource, table, type_name, issues, sites, bindings)

    def _resource(self, value: Any, path: str, contained: bool, issues: list[ValidationIssue],
                  sites: list[ResourceSite] | None, bindings: RequiredBindings | None) -> None:
        if value.__class__ is not dict:
            issues.append(_issue(STRUCTURE, f"a resource must be a JSON object, not {json_kind(value)}", path))
            return
        type_name: Any = value.get("resourceType")
        table = self.resource_table(type_name) if type_name is not None else None
        if table is None:
            issues.append(_no_type(type_name, ERROR, path + ".resourceType"))
            return
        if contained:
            if "id" not in value:
                issues.append(_issue(REQUIRED, "a contained resource must have an id for references to "
                                     "point at (http://hl7.org/fhir/R4/references.html#contained)", path + ".id"))
            if "contained" in value:
                issues.append(_issue(STRUCTURE, "a contained resource must not contain other resources "
                                     "(dom-2)", path + ".contained"))
        if sites is not None:
            sites.append(ResourceSite(value, type_name, path, contained))
        self._object(value, table, path, issues, sites, bindings)

    def _object(self, obj: dict[str, Any], table: Table, path: str, issues: list[ValidationIssue],
                sites: list[ResourceSite] | None, bindings: RequiredBindings | None) -> None:
        slots = table.slots
        groups: dict[str, str] | None = None
        marks = None
        if bindings is not None:
            cached = table.bound
            if cached is not None and cached[0] is bindings.token:
                marks = cached[1]
            else:
                marks = bindings.of(table.node)
                table.bound = (bindings.token, marks)
        for key, value in obj.items():
            slot = slots.get(key)
            if slot is None:
                self._other_key(obj, key, value, table, path, issues, bindings)
                continue
            if marks is not None:
                bound = marks.get(key)
                if bound is not None:
                    _check_bound(bound, slot, value, f"{path}.{key}", issues)
            if slot.group is not None:
                if groups is None:
                    groups = {slot.group: key}
                elif slot.group in groups:
                    issues.append(_issue(STRUCTURE, f"only one type of {slot.group.rsplit('.', 1)[1]} may be "
                                         f"present, found {groups[slot.group]} and {key}", f"{path}.{key}"))
                else:
                    groups[slot.group] = key
            kind = slot.kind
            if slot.array:
                if value.__class__ is not list:
                    self._not_array(slot, value, f"{path}.{key}", issues)
                    continue
                if not value:
                    issues.append(_issue(STRUCTURE, f"'{key}' is an empty array: omit the element instead",
                                         f"{path}.{key}"))
                    continue
                if len(value) > slot.max:
                    issues.append(_issue(STRUCTURE, f"'{key}' has {len(value)} items, at most {slot.max} "
                                         "allowed", f"{path}.{key}"))
                if kind == PRIMITIVE:
                    check = slot.check
                    assert check is not None
                    for i, item in enumerate(value):
                        if item is None:
                            if not _aligned(obj.get(slot.underscore), i):
                                issues.append(_issue(STRUCTURE, f"null in '{key}' is only allowed where "
                                                     f"'{slot.underscore}' has an item", f"{path}.{key}[{i}]"))
                            continue
                        problem = check(item)
                        if problem is not None:
                            issues.append(ValidationIssue(ERROR, problem[0], problem[1], f"{path}.{key}[{i}]"))
                elif kind == COMPLEX:
                    child = slot.table or self._link(slot)
                    for i, item in enumerate(value):
                        if item.__class__ is dict and item:
                            self._object(item, child, f"{path}.{key}[{i}]", issues, sites, bindings)
                        else:
                            issues.append(_bad_object(slot, item, f"{path}.{key}[{i}]"))
                else:
                    for i, item in enumerate(value):
                        self._resource(item, f"{path}.{key}[{i}]", slot.contained, issues, sites, bindings)
            elif kind == PRIMITIVE:
                assert slot.check is not None
                problem = slot.check(value)
                if problem is not None:
                    issues.append(_single_problem(slot, value, problem, f"{path}.{key}"))
            elif kind == COMPLEX:
                if value.__class__ is dict and value:
                    self._object(value, slot.table or self._link(slot), f"{path}.{key}", issues, sites, bindings)
                else:
                    issues.append(_bad_object(slot, value, f"{path}.{key}"))
            elif value.__class__ is list:
                issues.append(_issue(STRUCTURE, f"'{key}' must be a single resource, not an array", f"{path}.{key}"))
            else:
                self._resource(value, f"{path}.{key}", False, issues, sites, bindings)
        for names, label in table.required:
            for name in names:
                if name in obj:
                    break
            else:
                issues.append(_issue(REQUIRED, f"missing required element '{label}'", f"{path}.{label}"))

    def _other_key(self, obj: dict[str, Any], key: str, value: Any, table: Table, path: str,
                   issues: list[ValidationIssue], bindings: RequiredBindings | None) -> None:
        """A key that is not an element name: resourceType, a primitive's ``_name`` sibling, or an error."""
        if key == "resourceType":
            if not table.is_resource:
                issues.append(_issue(STRUCTURE, "resourceType is only allowed at the root of a resource",
                                     f"{path}.resourceType"))
            return
        if key[:1] == "_":
            slot = table.slots.get(key[1:])
            if slot is not None and slot.kind == PRIMITIVE:
                self._sibling(obj, slot, value, path, issues, bindings)
                return
            if slot is not None:
                issues.append(_issue(STRUCTURE, f"'{key}' is not allowed: only primitive elements have a "
                                     f"'_' sibling, and '{slot.name}' is a {slot.type}", f"{path}.{key}"))
                return
        issues.append(_issue(STRUCTURE, _unknown_message(key, table), f"{path}.{key}"))

    def _sibling(self, obj: dict[str, Any], slot: Slot, value: Any, path: str,
                 issues: list[ValidationIssue], bindings: RequiredBindings | None) -> None:
        """``_name``: the id and extensions of a primitive (http://hl7.org/fhir/R4/json.html#primitive)."""
        name = slot.name
        element = self.element_table
        if not slot.array:
            if value.__class__ is dict and value:
                self._object(value, element, f"{path}.{name}", issues, None, bindings)
            else:
                issues.append(_issue(STRUCTURE, f"'{slot.underscore}' must be a non-empty JSON object, not "
                                     f"{_describe(value)}", f"{path}.{name}"))
            return
        if value.__class__ is not list or not value:
            issues.append(_issue(STRUCTURE, f"'{slot.underscore}' must be a non-empty JSON array, not "
                                 f"{_describe(value)}", f"{path}.{slot.underscore}"))
            return
        values = obj.get(name)
        if values.__class__ is list and len(values) != len(value):
            issues.append(_issue(STRUCTURE, f"'{slot.underscore}' has {len(value)} items but '{name}' has "
                                 f"{len(values)}: the arrays must line up", f"{path}.{slot.underscore}"))
        for i, item in enumerate(value):
            if item is None:
                if not _aligned(values, i):
                    issues.append(_issue(STRUCTURE, f"null in '{slot.underscore}' is only allowed where "
                                         f"'{name}' has a value", f"{path}.{name}[{i}]"))
            elif item.__class__ is dict and item:
                self._object(item, element, f"{path}.{name}[{i}]", issues, None, bindings)
            else:
                issues.append(_issue(STRUCTURE, f"items of '{slot.underscore}' must be non-empty JSON objects or "
                                     f"null, not {_describe(item)}", f"{path}.{name}[{i}]"))

    @staticmethod
    def _not_array(slot: Slot, value: Any, path: str, issues: list[ValidationIssue]) -> None:
        issues.append(_issue(STRUCTURE, f"'{slot.name}' can repeat (max {_max(slot)}), so it must be a JSON "
                             f"array, not {json_kind(value)}", path))


def _check_bound(bound: Bound, slot: Slot, value: Any, path: str, issues: list[ValidationIssue]) -> None:
    """A required binding on each occurrence (values of the wrong JSON kind are the walk's to report)."""
    if slot.array:
        if value.__class__ is list:
            for i, item in enumerate(value):
                found = bound.check(item, f"{path}[{i}]")
                if found is not None:
                    issues.append(found)
        return
    found = bound.check(value, path)
    if found is not None:
        issues.append(found)


def _issue(code: str, message: str, expression: str) -> ValidationIssue:
    return ValidationIssue(ERROR, code, message, expression)


def _aligned(other: Any, i: int) -> bool:
    """Whether the partner array (``name`` for ``_name`` and back) has a non-null item at ``i``."""
    return other.__class__ is list and i < len(other) and other[i] is not None


def _max(slot: Slot) -> str:
    return "*" if slot.max == UNBOUNDED else str(slot.max)


def _describe(value: Any) -> str:
    if value == {}:
        return "an empty object"
    if value == []:
        return "an empty array"
    return json_kind(value)


def _bad_object(slot: Slot, value: Any, path: str) -> ValidationIssue:
    if value.__class__ is dict:
        return _issue(STRUCTURE, f"'{slot.name}' is an empty object: omit the element instead", path)
    if value.__class__ is list and not slot.array:
        return _issue(STRUCTURE, f"'{slot.name}' has max cardinality 1, so it must be a single {slot.type} "
                      "object, not an array", path)
    return _issue(STRUCTURE, f"'{slot.name}' is a {slot.type}, so it must be a JSON object, not "
                  f"{json_kind(value)}", path)


def _single_problem(slot: Slot, value: Any, problem: tuple[str, str], path: str) -> ValidationIssue:
    if value.__class__ is list:
        return _issue(STRUCTURE, f"'{slot.name}' has max cardinality 1, so it must be a single {slot.type}, "
                      "not an array", path)
    if value is None:
        return _issue(STRUCTURE, f"'{slot.name}' is null: omit the element instead", path)
    return ValidationIssue(ERROR, problem[0], problem[1], path)


def _no_type(type_name: Any, severity: Severity, expression: str) -> ValidationIssue:
    if type_name is None:
        return ValidationIssue(severity, REQUIRED, "missing resourceType: a resource must say its type", expression)
    shown = repr(type_name) if type_name.__class__ is str else json_kind(type_name)
    return ValidationIssue(severity, INVALID, f"{shown} is not a known concrete FHIR R4 resource type", expression)


def _unknown_message(key: str, table: Table) -> str:
    where = table.node.path
    choice_bases = {s.group.rsplit(".", 1)[1][:-3]: s.group for s in table.slots.values() if s.group}
    for base, group in choice_bases.items():
        if key.startswith(base) and key[len(base):len(base) + 1].isupper():
            allowed = ", ".join(s.name for s in table.slots.values() if s.group == group)
            return f"'{key}' is not a permitted type of {where}.{base}[x]: use one of {allowed}"
    close = difflib.get_close_matches(key, list(table.slots), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown element '{key}' in {where}{hint}"
