"""Snapshot generation: a profile's differential merged onto its base definition's snapshot.

Profiles written by hand, uploaded by testers or authored for the regional platform often carry
only a ``differential`` (http://hl7.org/fhir/R4/profiling.html#snapshot). The validator needs the
full element list, so it is derived here the way the specification describes it:

- every differential element is matched to the base element with the same id (ids follow
  http://hl7.org/fhir/R4/elementdefinition.html#id: ``Patient.identifier:nhs.system``); a
  differential without ids gets them from its paths and the slices they sit in;
- a concrete choice name (``Observation.valueQuantity``) means ``value[x]`` restricted to that
  type (http://hl7.org/fhir/R4/profiling.html#choice);
- a new ``sliceName`` copies the sliced element and its descendants into a new slice, placed after
  the slices already there (re-slices ``a/b`` are slices of slice ``a``);
- a path below an element whose children the base does not list (``Patient.identifier.system``)
  expands the element's type — its profile when the type names exactly one, or the element a
  ``contentReference`` points at — into the snapshot first;
- the matched element takes every property the differential states (cardinality, types,
  fixed[x]/pattern[x], bindings, slicing, ...), except that constraints are added to the base's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

FHIR_BASE = "http://hl7.org/fhir/StructureDefinition/"
BaseLookup = Callable[[str], list[dict[str, Any]] | None]
"""Snapshot elements of a StructureDefinition by canonical url (None when unknown)."""


class SnapshotError(ValueError):
    """Raised when a differential cannot be merged onto its base (unknown base, unmatched element)."""


def _segments(element_id: str) -> list[tuple[str, str | None]]:
    """``Patient.identifier:nhs.system`` -> [("Patient", None), ("identifier", "nhs"), ("system", None)]."""
    out: list[tuple[str, str | None]] = []
    for part in element_id.split("."):
        name, _, slice_name = part.partition(":")
        out.append((name, slice_name or None))
    return out


def _join(segments: list[tuple[str, str | None]]) -> str:
    return ".".join(name + (":" + s if s else "") for name, s in segments)


def _path_of(segments: list[tuple[str, str | None]]) -> str:
    return ".".join(name for name, _ in segments)


def assign_ids(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Elements with an ``id`` each: kept when present, else derived from path and slice context.

    An element without an id belongs to the slice of the most recent element whose path is its
    parent path (the convention of id-less STU3-era differentials).
    """
    latest: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for element in elements:
        path = element.get("path")
        if not isinstance(path, str):
            raise SnapshotError("a differential element has no path")
        element_id = element.get("id")
        if not isinstance(element_id, str):
            parent, _, last = path.rpartition(".")
            base = latest.get(parent, parent) + "." + last if parent else last
            slice_name = element.get("sliceName")
            element_id = f"{base}:{slice_name}" if slice_name else base
            element = {**element, "id": element_id}
        latest[path] = element_id
        out.append(element)
    return out


class _Snapshot:
    """The element list being built, with lookup by id."""

    def __init__(self, elements: list[dict[str, Any]], base_lookup: BaseLookup, type_names: set[str]) -> None:
        self.elements = elements
        self.by_id = {e["id"]: e for e in elements}
        self.base_lookup = base_lookup
        self.type_names = type_names

    # -- structure ---------------------------------------------------------------------------

    def _position(self, element_id: str) -> int:
        for i, element in enumerate(self.elements):
            if element["id"] == element_id:
                return i
        raise SnapshotError(f"no element {element_id}")

    def _end_of_subtree(self, element_id: str) -> int:
        """Index just after the element and all its descendants (and slices of those)."""
        i = self._position(element_id) + 1
        prefix_dot, prefix_colon = element_id + ".", element_id + ":"
        while i < len(self.elements):
            other = self.elements[i]["id"]
            if not (other.startswith(prefix_dot) or other.startswith(prefix_colon)):
                break
            i += 1
        return i

    def _has_children(self, element_id: str) -> bool:
        prefix = element_id + "."
        return any(e["id"].startswith(prefix) for e in self.elements)

    def _insert(self, at: int, new: list[dict[str, Any]]) -> None:
        self.elements[at:at] = new
        for element in new:
            self.by_id[element["id"]] = element

    # -- resolution --------------------------------------------------------------------------

    def resolve(self, element_id: str, implied_types: dict[str, str]) -> str:
        """The id of the snapshot element a differential id names, creating slices and expanding types.

        ``implied_types`` collects, per resolved id, the type a concrete choice name implied.
        """
        segments = _segments(element_id)
        for i in range(1, len(segments) + 1):
            prefix = segments[:i]
            if _join(prefix) in self.by_id:
                continue
            if i == 1:
                raise SnapshotError(f"differential element {element_id} does not start at the profiled type")
            parent_id = _join(segments[: i - 1])
            name, slice_name = segments[i - 1]
            if not self._has_children(parent_id):
                self._expand(parent_id)
            if _join(prefix) not in self.by_id and not self._has_child(parent_id, name):
                renamed = self._choice_name(parent_id, name)
                if renamed is not None:
                    choice, type_code = renamed
                    segments[i - 1] = (choice, slice_name)
                    prefix = segments[:i]
                    implied_types[_join(prefix)] = type_code
                    if _join(prefix) in self.by_id:
                        self.merge(_join(prefix), {}, type_code)
            if _join(prefix) in self.by_id:
                continue
            if slice_name is not None:
                self._add_slice(parent_id, segments[i - 1][0], slice_name)
                continue
            raise SnapshotError(f"differential element {element_id} matches no element of the base "
                                f"(no {_join(prefix)})")
        return _join(segments)

    def _has_child(self, parent_id: str, name: str) -> bool:
        return parent_id + "." + name in self.by_id

    def _choice_name(self, parent_id: str, name: str) -> tuple[str, str] | None:
        """``valueQuantity`` under a parent with ``value[x]`` -> ("value[x]", "Quantity")."""
        prefix = parent_id + "."
        for element in self.elements:
            element_id = element["id"]
            if not element_id.startswith(prefix) or not element_id.endswith("[x]"):
                continue
            choice = element_id[len(prefix):]
            if "." in choice or ":" in choice:
                continue
            stem = choice[:-3]
            rest = name[len(stem):]
            if name.startswith(stem) and rest and rest[0].isupper():
                for candidate in (rest, rest[0].lower() + rest[1:]):
                    if candidate in self.type_names:
                        return choice, candidate
        return None

    def _add_slice(self, parent_id: str, name: str, slice_name: str) -> None:
        """Copy the sliced element (and its descendants) as a new slice after the existing ones."""
        head, _, _tail = slice_name.rpartition("/")
        base_id = f"{parent_id}.{name}" + (f":{head}" if head else "")
        if base_id not in self.by_id:
            raise SnapshotError(f"slice {slice_name} of {parent_id}.{name}: the sliced element is not in the base")
        new_id = f"{parent_id}.{name}:{slice_name}"
        start = self._position(base_id)
        end = self._end_of_subtree(base_id)
        copies: list[dict[str, Any]] = []
        for element in self.elements[start:end]:
            old = element["id"]
            rest = old[len(base_id):]
            if rest.startswith(":"):
                continue  # other slices of the base are not part of the new slice
            clone = copy.deepcopy(element)
            clone["id"] = new_id + rest
            if not rest:
                clone.pop("slicing", None)
                clone["sliceName"] = slice_name
                clone["min"] = 0
            copies.append(clone)
        self._insert(end, copies)

    def _expand(self, element_id: str) -> None:
        """List the children of an element from its type's (or contentReference's) definition."""
        element = self.by_id[element_id]
        reference = element.get("contentReference")
        if isinstance(reference, str):
            target_path = reference.split("#", 1)[-1]
            source = [e for e in self.elements if e["id"].startswith(target_path + ".")]
            self._insert(self._end_of_subtree(element_id),
                         [self._rebase(e, target_path, target_path, element) for e in source])
            return
        types = element.get("type", [])
        codes = {t.get("code") for t in types}
        if len(codes) != 1:
            return
        (only,) = types if len(types) == 1 else (types[0],)
        profiles = only.get("profile", [])
        url = profiles[0] if len(profiles) == 1 and len(types) == 1 else FHIR_BASE + str(only["code"])
        source_elements = self.base_lookup(url)
        if not source_elements:
            raise SnapshotError(f"cannot expand {element_id}: no definition for {url}")
        root = source_elements[0]
        children = [self._rebase(e, root["id"], root["path"], element) for e in source_elements[1:]]
        self._insert(self._end_of_subtree(element_id), children)

    @staticmethod
    def _rebase(source: dict[str, Any], root_id: str, root_path: str, parent: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``source`` moved from under ``root`` to under ``parent`` (ids and paths)."""
        clone = copy.deepcopy(source)
        clone["id"] = parent["id"] + source["id"][len(root_id):]
        clone["path"] = parent["path"] + source["path"][len(root_path):]
        return clone

    # -- merge -------------------------------------------------------------------------------

    def merge(self, target_id: str, diff: dict[str, Any], implied_type: str | None) -> None:
        target = self.by_id[target_id]
        if implied_type is not None and "type" not in diff:
            target["type"] = [t for t in target.get("type", []) if t.get("code") == implied_type] or [
                {"code": implied_type}]
        for key, value in diff.items():
            if key in ("id", "path"):
                continue
            if key == "constraint":
                kept = [c for c in target.get("constraint", []) if c.get("key") not in {v.get("key") for v in value}]
                target["constraint"] = kept + copy.deepcopy(value)
            elif key.startswith(("fixed", "pattern")):
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    del target[old]
                target[key] = copy.deepcopy(value)
            else:
                target[key] = copy.deepcopy(value)


def generate_snapshot(sd: dict[str, Any], base_lookup: BaseLookup, type_names: set[str] | None = None,
                      problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The snapshot elements of ``sd`` (which has a differential) built on its base's snapshot.

    ``type_names`` are the FHIR type names a concrete choice element name may end with (by
    default the core data, primitive and resource types). A differential element that matches
    nothing in the base is left out and described in ``problems`` (when given; else it raises),
    so one typo does not make a whole profile unusable.
    """
    base_url = sd.get("baseDefinition")
    if not isinstance(base_url, str):
        raise SnapshotError(f"{sd.get('url')} has no baseDefinition to build a snapshot on")
    base = base_lookup(base_url)
    if not base:
        raise SnapshotError(f"the base definition {base_url} of {sd.get('url')} is unknown")
    differential = sd.get("differential", {}).get("element", [])
    if not isinstance(differential, list):
        raise SnapshotError(f"{sd.get('url')} has a malformed differential")
    elements = assign_ids(copy.deepcopy(base))
    root_path = elements[0]["path"]
    sd_type = sd.get("type")
    if isinstance(sd_type, str) and sd_type != root_path and "/" not in sd_type:
        raise SnapshotError(f"{sd.get('url')} is of type {sd_type} but its base defines {root_path}")
    snapshot = _Snapshot(elements, base_lookup, type_names if type_names is not None else _default_type_names())
    for diff in assign_ids(differential):
        implied: dict[str, str] = {}
        try:
            target = snapshot.resolve(diff["id"], implied)
        except SnapshotError as problem:
            if problems is None:
                raise
            problems.append(str(problem))
            continue
        snapshot.merge(target, diff, None)
    return snapshot.elements


def _default_type_names() -> set[str]:
    from profiles.definitions import core

    definitions = core()
    return set(definitions.data_types) | set(definitions.primitive_types) | set(definitions.resource_types) | {
        "Resource", "DomainResource", "BackboneElement", "Element"}
