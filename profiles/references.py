"""Resolving references: contained ``#id`` references and references between Bundle entries.

http://hl7.org/fhir/R4/references.html: a literal reference is relative (``Patient/123``),
absolute (``http://server/fhir/Patient/123``), a ``urn:uuid:``/``urn:oid:`` (resolvable only
inside a Bundle), or ``#id`` — a resource contained in the same resource (``#`` alone is the
container itself). A contained resource that nothing references is an error (dom-3,
http://hl7.org/fhir/R4/references.html#contained).

In a Bundle (http://hl7.org/fhir/R4/bundle.html#references) absolute references and urns are
matched against ``entry.fullUrl``; a relative reference is first made absolute with the base of
the referring entry's fullUrl, then matched; a version-specific reference
(``.../_history/2``) names the entry with that fullUrl whose ``meta.versionId`` is 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

REFERENCE = re.compile(
    r"^(?:(?P<base>[a-z][a-z0-9+.-]*://.*?)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A literal reference taken apart (http://hl7.org/fhir/R4/references.html#literal)."""

    text: str
    type: str | None
    id: str | None
    version: str | None
    base: str | None

    @property
    def contained(self) -> bool:
        return self.text.startswith("#")

    @property
    def urn(self) -> bool:
        return self.text.startswith("urn:")


def parse_reference(text: str) -> Reference:
    match = REFERENCE.match(text)
    if match is None:
        return Reference(text, None, None, None, None)
    return Reference(text, match["type"], match["id"], match["version"], match["base"])


def _strings(value: Any) -> Iterator[tuple[str, str]]:
    """Every (key, string) pair in a JSON tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                yield key, item
            elif isinstance(item, dict | list):
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield "", item
            elif isinstance(item, dict | list):
                yield from _strings(item)


LOCAL = re.compile(r"^#[A-Za-z0-9\-.]{0,64}$")


def local_references(resource: dict[str, Any]) -> set[str]:
    """The ``#...`` values a resource (contained resources included) uses as references or canonicals."""
    return {text for key, text in _strings(resource)
            if text.startswith("#") and (key == "reference" or LOCAL.match(text))}


def unreferenced_contained(resource: dict[str, Any]) -> list[int]:
    """Indexes of contained resources nothing in the resource refers to (dom-3)."""
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return []
    used = local_references({k: v for k, v in resource.items() if k != "contained"})
    out: list[int] = []
    for i, item in enumerate(contained):
        if not isinstance(item, dict):
            continue
        others = [c for j, c in enumerate(contained) if j != i]
        refers_back = "#" in local_references(item)
        if "#" + str(item.get("id")) in (used | local_references({"contained": others})) or refers_back:
            continue
        out.append(i)
    return out


@dataclass(slots=True)
class BundleIndex:
    """Bundle entries by fullUrl and by type/id, to resolve references between them."""

    bundle: dict[str, Any]
    by_full_url: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_type_id: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    full_url_of: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, bundle: dict[str, Any]) -> BundleIndex:
        index = cls(bundle)
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                continue
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                index.by_full_url.setdefault(full_url, []).append(resource)
                index.full_url_of[id(resource)] = full_url
            if isinstance(resource.get("resourceType"), str) and isinstance(resource.get("id"), str):
                index.by_type_id.setdefault((resource["resourceType"], resource["id"]), []).append(resource)
        return index

    @property
    def type(self) -> str | None:
        found = self.bundle.get("type")
        return found if isinstance(found, str) else None

    def resolve(self, text: str, referrer: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Entry resources a reference can mean (several when versions or duplicates make it ambiguous)."""
        reference = parse_reference(text)
        version = reference.version
        target = text.split("/_history/", 1)[0] if version else text
        candidates: list[dict[str, Any]] = []
        if reference.base is not None or reference.urn:
            candidates = self.by_full_url.get(target, [])
        elif reference.type is not None and reference.id is not None:
            base = self._base_of(referrer)
            if base is not None:
                candidates = self.by_full_url.get(f"{base}/{reference.type}/{reference.id}", [])
            if not candidates:
                candidates = self.by_type_id.get((reference.type, reference.id), [])
        if version is not None:
            candidates = [c for c in candidates if (c.get("meta") or {}).get("versionId") == version]
        return candidates

    def _base_of(self, referrer: dict[str, Any] | None) -> str | None:
        if referrer is None:
            return None
        full_url = self.full_url_of.get(id(referrer))
        if full_url is None:
            return None
        parsed = parse_reference(full_url)
        return parsed.base
