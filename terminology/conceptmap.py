"""ConceptMap lookup for ``$translate`` (http://hl7.org/fhir/R4/conceptmap-operation-translate.html).

Forward: find ``group.element`` with the source code in a group whose ``source`` is the given
system; each ``target`` is a match. ``group.unmapped`` applies when no element matches
(``provided``: the same code in the target system, ``fixed``: one code, ``other-map``: ask the
map it names). Reverse: find targets with the given code in groups whose ``target`` is the given
system and answer their elements' codes.

In reverse, the relationship is turned around too: when ``A -> B`` is ``wider`` (B is wider than
A), then ``B -> A`` is ``narrower``. R4 leaves this implicit; the reversed equivalence is what a
client needs to judge the match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REVERSED = {
    "wider": "narrower",
    "narrower": "wider",
    "subsumes": "specializes",
    "specializes": "subsumes",
}
NON_MATCHES = frozenset({"unmatched", "disjoint"})


@dataclass(frozen=True, slots=True)
class Translation:
    """One ``$translate`` match: the concept it maps to, how, and which ConceptMap said so."""

    equivalence: str
    system: str | None
    code: str | None
    display: str | None
    source: str  # the ConceptMap url
    version: str | None = None

    @property
    def is_match(self) -> bool:
        return self.code is not None and self.equivalence not in NON_MATCHES


MapResolver = Callable[[str], dict[str, Any] | None]


def translate_with(conceptmap: dict[str, Any], system: str | None, code: str, *, target_system: str | None = None,
                   reverse: bool = False, resolve: MapResolver | None = None,
                   trail: tuple[str, ...] = ()) -> list[Translation]:
    """Matches for ``system#code`` in one ConceptMap (empty when the map does not cover it)."""
    url = conceptmap.get("url", "")
    if url in trail:
        return []
    found: list[Translation] = []
    for group in conceptmap.get("group", []):
        if reverse:
            found.extend(_reverse(group, url, system, code, target_system))
        else:
            found.extend(_forward(group, url, system, code, target_system, resolve, (*trail, url)))
    return found


def _forward(group: dict[str, Any], url: str, system: str | None, code: str, target_system: str | None,
             resolve: MapResolver | None, trail: tuple[str, ...]) -> list[Translation]:
    if system is not None and group.get("source", system) != system:
        return []
    target = group.get("target")
    if target_system is not None and target is not None and target != target_system:
        return []
    found: list[Translation] = []
    matched = False
    for element in group.get("element", []):
        if element.get("code") != code:
            continue
        matched = True
        targets = element.get("target") or [{"equivalence": "unmatched"}]
        for t in targets:
            found.append(Translation(
                equivalence=t.get("equivalence", "equivalent"), system=target if t.get("code") else None,
                code=t.get("code"), display=t.get("display"), source=url, version=group.get("targetVersion"),
            ))
    if not matched and "unmapped" in group:
        found.extend(_unmapped(group, url, system, code, target_system, resolve, trail))
    return found


def _unmapped(group: dict[str, Any], url: str, system: str | None, code: str, target_system: str | None,
              resolve: MapResolver | None, trail: tuple[str, ...]) -> list[Translation]:
    unmapped = group["unmapped"]
    mode = unmapped.get("mode")
    target = group.get("target")
    if mode == "provided":
        return [Translation("equal", target, code, None, url)]
    if mode == "fixed" and unmapped.get("code"):
        return [Translation("equivalent", target, unmapped["code"], unmapped.get("display"), url)]
    if mode == "other-map" and unmapped.get("url") and resolve is not None:
        other = resolve(unmapped["url"])
        if other is not None:
            return translate_with(other, system, code, target_system=target_system, resolve=resolve, trail=trail)
    return []


def _reverse(group: dict[str, Any], url: str, system: str | None, code: str,
             source_system: str | None) -> list[Translation]:
    if system is not None and group.get("target", system) != system:
        return []
    source = group.get("source")
    if source_system is not None and source is not None and source != source_system:
        return []
    found: list[Translation] = []
    for element in group.get("element", []):
        for t in element.get("target", []):
            if t.get("code") == code:
                equivalence = t.get("equivalence", "equivalent")
                found.append(Translation(
                    equivalence=REVERSED.get(equivalence, equivalence), system=source, code=element.get("code"),
                    display=element.get("display"), source=url, version=group.get("sourceVersion"),
                ))
    return found
