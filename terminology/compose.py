"""Evaluate a ValueSet definition (``compose``) into the set of codes it contains.

http://hl7.org/fhir/R4/valueset.html#compositions: the value set is the union of its
``include`` entries minus the union of its ``exclude`` entries; inside one entry, ``system``
(with its ``concept`` list or ``filter``s, all of which must match) and each ``valueSet`` import
are intersected.

The result is honest about what this server cannot know. Parts that need a code system we do
not carry (LOINC, SNOMED CT, UCUM, the rest of ICD-10) or whose code system is only a fragment
make their system *open*: a code of an open system that is not among the known entries may still
be in the value set, so membership answers "unknown" for it, never "no". The expansions published
with R4 (for SNOMED-based value sets) are merged in as extra known members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from terminology.codesystem import CodeSystemView
from terminology.errors import TerminologyError
from terminology.filters import apply_filter

Key = tuple[str, str]  # (system, code)
UNCLOSED = "http://hl7.org/fhir/StructureDefinition/valueset-unclosed"
TOOCOSTLY = "http://hl7.org/fhir/StructureDefinition/valueset-toocostly"


@dataclass(frozen=True, slots=True)
class Entry:
    """One code in a value set, as an expansion lists it."""

    system: str
    version: str | None
    code: str
    display: str | None
    designations: tuple[dict[str, Any], ...] = ()
    inactive: bool = False
    abstract: bool = False
    deprecated: bool = False


@dataclass(slots=True)
class Evaluated:
    """What a value set contains, as far as this server can tell.

    ``open_systems``: systems whose membership is not known beyond ``entries``;
    ``partial_systems``: systems open only because we carry part of the code system (content
    fragment/example), so a code our copy defines is decided and only undefined codes are unknown;
    ``external``: systems we carry no content for at all (no expansion can be produced from them);
    ``open_all``: some part (an unknown imported value set) could contain any code; ``deps``:
    every canonical url read, so caches can be dropped when one of them changes.
    """

    entries: dict[Key, Entry] = field(default_factory=dict)
    open_systems: set[str] = field(default_factory=set)
    partial_systems: set[str] = field(default_factory=set)
    external: set[str] = field(default_factory=set)
    open_all: bool = False
    deps: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    published: bool = False

    @property
    def closed(self) -> bool:
        return not self.open_all and not self.open_systems and not self.partial_systems

    def is_open_for(self, system: str | None, *, defined: bool = False) -> bool:
        """Whether a non-member code of ``system`` may still be in the value set.

        ``defined``: the code is defined by the (partial) code system we carry, so a partial
        system has already decided it.
        """
        if self.open_all:
            return True
        if system is None:
            return bool(self.open_systems or self.partial_systems)
        return system in self.open_systems or (system in self.partial_systems and not defined)


class Resolver(Protocol):
    """What evaluation needs from the service (resources by url, nested value sets cached)."""

    def codesystem(self, url: str) -> CodeSystemView | None: ...

    def evaluated(self, url: str, trail: tuple[str, ...]) -> Evaluated | None: ...

    def published(self, url: str) -> dict[str, Any] | None: ...


def evaluate(valueset: dict[str, Any], resolver: Resolver, trail: tuple[str, ...] = ()) -> Evaluated:
    """Evaluate ``valueset`` (compose, or a bare expansion) into an :class:`Evaluated`."""
    url = valueset.get("url")
    compose = valueset.get("compose")
    if compose is None:
        expansion = valueset.get("expansion")
        if expansion is None and url:
            expansion = (resolver.published(url) or {}).get("expansion")
        result = Evaluated()
        if expansion is None:
            result.open_all = True
            result.notes.append(f"ValueSet {url!r} has neither compose nor expansion")
            return result
        _merge_expansion(result, expansion, trust=True)
        return result
    result = Evaluated()
    for include in compose.get("include", []):
        _union(result, _entry(include, resolver, trail, result.deps))
    for exclude in compose.get("exclude", []):
        _subtract(result, _entry(exclude, resolver, trail, result.deps))
    if compose.get("inactive") is False:
        result.entries = {k: e for k, e in result.entries.items() if not e.inactive}
    if not result.closed and url:
        published = resolver.published(url)
        if published is not None:
            _merge_expansion(result, published["expansion"], trust=False)
            result.published = True
    return result


def _merge_expansion(result: Evaluated, expansion: dict[str, Any], *, trust: bool) -> None:
    """Add an expansion's codes as known members; ``trust`` closes the set when it says it is complete."""
    items = list(_flatten(expansion.get("contains", [])))
    for item in items:
        key = (item["system"], item["code"])
        if key not in result.entries:
            result.entries[key] = Entry(
                system=item["system"], version=item.get("version"), code=item["code"], display=item.get("display"),
                designations=tuple(item.get("designation", [])), inactive=bool(item.get("inactive")),
                abstract=bool(item.get("abstract")),
            )
    limited = any(x.get("url") in (UNCLOSED, TOOCOSTLY) for x in expansion.get("extension", []))
    limited = limited or expansion.get("total", 0) > len(items)
    if trust and limited:
        result.open_systems.update(system for system, _ in result.entries)
        result.open_all = result.open_all or not result.entries


def _flatten(items: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for item in items:
        if "code" in item and "system" in item:
            yield item
        yield from _flatten(item.get("contains", []))


def _entry(part: dict[str, Any], resolver: Resolver, trail: tuple[str, ...], deps: set[str]) -> Evaluated:
    """One include/exclude entry: its system part and each imported value set, intersected."""
    pieces: list[Evaluated] = []
    system = part.get("system")
    if system:
        deps.add(system)
        pieces.append(_system_part(part, system, resolver))
    for ref in part.get("valueSet", []):
        ref_url = ref.split("|", 1)[0]
        deps.add(ref_url)
        nested = resolver.evaluated(ref_url, trail)
        if nested is None:
            unknown = Evaluated(open_all=True)
            unknown.notes.append(f"Imported ValueSet {ref_url!r} is not known to this server")
            pieces.append(unknown)
        else:
            deps.update(nested.deps)
            pieces.append(nested)
    if not pieces:
        return Evaluated()
    result = pieces[0]
    for other in pieces[1:]:
        result = _intersect(result, other)
    return result


def _system_part(part: dict[str, Any], system: str, resolver: Resolver) -> Evaluated:
    cs = resolver.codesystem(system)
    version = part.get("version") or (cs.version if cs else None)
    result = Evaluated()
    listed = part.get("concept")
    if listed:
        for item in listed:
            concept = cs.get(item["code"]) if cs else None
            if cs is not None and cs.complete and concept is None:
                result.notes.append(f"ValueSet lists {system}#{item['code']}, which the code system does not define")
                continue
            designations = (*item.get("designation", []), *(concept.designations if concept else ()))
            result.entries[(system, concept.code if concept else item["code"])] = Entry(
                system=system, version=version, code=concept.code if concept else item["code"],
                display=item.get("display") or (concept.display if concept else None),
                designations=tuple(designations), inactive=concept.inactive if concept else False,
                abstract=concept.abstract if concept else False, deprecated=concept.deprecated if concept else False,
            )
        return result
    if cs is None:
        result.open_systems.add(system)
        result.external.add(system)
        result.notes.append(f"Code system {system!r} is not carried by this server")
        return result
    try:
        codes: set[str] | None = None
        for flt in part.get("filter", []):
            matched = apply_filter(cs, flt.get("property", ""), flt.get("op", ""), str(flt.get("value", "")))
            codes = matched if codes is None else codes & matched
    except TerminologyError as exc:
        result.open_systems.add(system)
        result.notes.append(exc.message)
        return result
    for code, concept in cs.concepts.items():
        if codes is None or code in codes:
            result.entries[(system, code)] = Entry(
                system=system, version=version, code=code, display=concept.display,
                designations=tuple(concept.designations), inactive=concept.inactive, abstract=concept.abstract,
                deprecated=concept.deprecated,
            )
    if not cs.complete:
        result.partial_systems.add(system)
        result.notes.append(f"Code system {system!r} is only carried as {cs.content!r} content")
    return result


def _union(into: Evaluated, part: Evaluated) -> None:
    for key, entry in part.entries.items():
        into.entries.setdefault(key, entry)
    into.open_systems |= part.open_systems
    into.partial_systems |= part.partial_systems
    into.external |= part.external
    into.open_all = into.open_all or part.open_all
    into.notes.extend(part.notes)


def _subtract(into: Evaluated, part: Evaluated) -> None:
    for key in part.entries:
        into.entries.pop(key, None)
    if part.open_systems:
        # An exclude we cannot evaluate makes every remaining code of that system uncertain.
        into.entries = {k: e for k, e in into.entries.items() if k[0] not in part.open_systems}
        into.open_systems |= part.open_systems
    into.partial_systems |= part.partial_systems
    if part.open_all:
        into.open_all = True
    into.notes.extend(part.notes)


def _intersect(a: Evaluated, b: Evaluated) -> Evaluated:
    """Codes in both; a system stays open when either side cannot rule its codes out."""
    result = Evaluated(notes=[*a.notes, *b.notes], deps=a.deps | b.deps)
    result.entries = {k: e for k, e in a.entries.items() if k in b.entries}
    for one, other in ((a, b), (b, a)):
        for key in one.entries:
            if key not in other.entries and other.is_open_for(key[0]):
                result.open_systems.add(key[0])
    result.open_systems |= a.open_systems & b.open_systems
    result.partial_systems = (a.partial_systems | b.partial_systems) - result.open_systems
    result.external = a.external & b.external
    if a.open_all and b.open_all:
        result.open_all = True
    elif a.open_all:
        result.open_systems |= b.open_systems | {k[0] for k in b.entries}
    elif b.open_all:
        result.open_systems |= a.open_systems | {k[0] for k in a.entries}
    return result
