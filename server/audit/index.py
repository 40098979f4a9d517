"""Search entries of the AuditEvents this server writes, without evaluating FHIRPath.

Indexing is most of what storing an AuditEvent costs (the generic indexer runs ~20 FHIRPath
expressions per event), and every read pays for one event. The events' shape is ours
(:mod:`.events`), so the values each search parameter reads are found by walking it directly and
handed to the same per-type indexing functions the generic indexer uses: identical entries (a test
compares them), a fraction of the time. An event with an element this walk does not know is
indexed by the generic indexer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.fhir.json import dumps
from server.search.index import Indexer
from server.search.model import Entry
from server.search.types import MODULES

TOP = frozenset({"resourceType", "id", "meta", "extension", "type", "subtype", "action", "recorded", "outcome",
                 "outcomeDesc", "purposeOfEvent", "agent", "source", "entity"})
AGENT = frozenset({"type", "who", "name", "requestor", "role", "network", "purposeOfUse"})
ENTITY = frozenset({"what", "type", "role", "query", "description"})
SOURCE = frozenset({"site", "observer", "type"})
WHO = frozenset({"identifier", "display", "type", "reference"})
OBSERVER = frozenset({"display"})


def _known(event: dict[str, Any]) -> bool:
    if not TOP.issuperset(event):
        return False
    source = event.get("source") or {}
    if not SOURCE.issuperset(source) or not OBSERVER.issuperset(source.get("observer") or {}):
        return False
    for agent in event.get("agent") or ():
        if not AGENT.issuperset(agent) or not WHO.issuperset(agent.get("who") or {}):
            return False
    return all(ENTITY.issuperset(entity) and WHO.issuperset(entity.get("what") or {})
               for entity in event.get("entity") or ())


def _patient(ref: Any) -> bool:
    return isinstance(ref, dict) and str(ref.get("reference", "")).split("/_history")[0].rsplit("/", 2)[-2:-1] == \
        ["Patient"]


def _values(event: dict[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """(parameter code, value, FHIR type) for every value our AuditEvents give a parameter."""
    if "action" in event:
        yield "action", event["action"], "code"
    if "outcome" in event:
        yield "outcome", event["outcome"], "code"
    if "type" in event:
        yield "type", event["type"], "Coding"
    for coding in event.get("subtype") or ():
        yield "subtype", coding, "Coding"
    if "recorded" in event:
        yield "date", event["recorded"], "instant"
    for concept in event.get("purposeOfEvent") or ():
        yield "purpose", concept, "CodeableConcept"
    for agent in event.get("agent") or ():
        who = agent.get("who")
        if who:
            yield "agent", who, "Reference"
            if _patient(who):
                yield "patient", who, "Reference"
        if "name" in agent:
            yield "agent-name", agent["name"], "string"
        for role in agent.get("role") or ():
            yield "agent-role", role, "CodeableConcept"
        address = (agent.get("network") or {}).get("address")
        if address:
            yield "address", address, "string"
        for concept in agent.get("purposeOfUse") or ():
            yield "purpose", concept, "CodeableConcept"
    source = event.get("source") or {}
    if "site" in source:
        yield "site", source["site"], "string"
    for entity in event.get("entity") or ():
        what = entity.get("what")
        if what:
            yield "entity", what, "Reference"
            if _patient(what):
                yield "patient", what, "Reference"
        if "role" in entity:
            yield "entity-role", entity["role"], "Coding"
        if "type" in entity:
            yield "entity-type", entity["type"], "Coding"


UNIQUE = frozenset({"date", "entity", "patient"})
"""Parameters whose values differ from event to event (not worth remembering)."""
CACHE_SIZE = 4096


class AuditIndexer:
    """Entries of our AuditEvents; the entries of values that recur (the client, the codes, the
    server) are remembered, since most events of a busy server repeat them."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self._cache: dict[tuple[str, str, bytes], tuple[Entry, ...]] = {}
        self._version = -1

    def entries(self, event: dict[str, Any]) -> list[Entry]:
        """The search entries of ``event``, exactly as ``indexer.entries(event)`` computes them."""
        indexer = self.indexer
        if not _known(event):
            return indexer.entries(event)
        registry = indexer.registry
        if registry.version != self._version:
            self._cache.clear()
            self._version = registry.version
        params = registry.for_type("AuditEvent")
        out: dict[Entry, None] = {}
        cache = self._cache
        for code, value, fhir_type in _values(event):
            key = None if code in UNIQUE else (code, fhir_type, dumps(value))
            found = cache.get(key) if key is not None else None
            if found is None:
                param = params.get(code)
                if param is None or not registry.is_supported(param):
                    continue
                found = tuple(MODULES[param.type].index(param, value, fhir_type, resource=event,
                                                        options=indexer.options))
                if key is not None:
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    cache[key] = found
            for entry in found:
                out[entry] = None
        return list(out)
