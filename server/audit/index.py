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
from server.search.registry import ParamDef
from server.search.types import MODULES
from server.search.types.date import MAX_US, MIN_US, parse_range
from server.search.types.reference import parse_reference

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


STATIC = ("action", "outcome", "type", "subtype", "purposeOfEvent", "agent", "source")
"""The elements whose values recur from event to event (the client, the codes, the server): their
entries are remembered together, keyed by their JSON."""
CACHE_SIZE = 4096


class AuditIndexer:
    """Entries of our AuditEvents. Per event only the values that differ are indexed afresh (the
    time, the entities' references, each by a direct path for the forms our events write); the
    entries of the rest (the recurring elements together, each entity's type and role) are
    remembered, since most events of a busy server repeat them."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self._static: dict[bytes, tuple[Entry, ...]] = {}
        self._roles: dict[bytes, tuple[Entry, ...]] = {}
        self._seconds: dict[str, int] = {}
        self._params: dict[str, ParamDef | None] = {}
        self._version = -1

    def _param(self, code: str) -> ParamDef | None:
        if code not in self._params:
            registry = self.indexer.registry
            param = registry.for_type("AuditEvent").get(code)
            self._params[code] = param if param is not None and registry.is_supported(param) else None
        return self._params[code]

    def _index(self, code: str, value: Any, fhir_type: str, event: dict[str, Any]) -> list[Entry]:
        param = self._param(code)
        if param is None:
            return []
        return list(MODULES[param.type].index(param, value, fhir_type, resource=event, options=self.indexer.options))

    def _date(self, text: Any, event: dict[str, Any]) -> list[Entry]:
        """``recorded`` as :func:`server.fhir.instant.to_instant` writes it (``…SS.ffffffZ``): the
        second's start remembered, the microseconds added; any other form the generic way."""
        param = self._param("date")
        if param is None or param.type != "date" or not isinstance(text, str) or len(text) != 27 or \
                text[19] != "." or text[26] != "Z" or not text[20:26].isdigit():
            return self._index("date", text, "instant", event)
        second = text[:19]
        base = self._seconds.get(second)
        if base is None:
            found = parse_range(second + "Z")
            if found is None:
                return self._index("date", text, "instant", event)
            base = found[0]
            _remember(self._seconds, second, base)
        us = base + int(text[20:26])
        if not MIN_US <= us <= MAX_US:
            return self._index("date", text, "instant", event)
        return [Entry("date", param.code, (us, us))]

    def _reference(self, code: str, what: dict[str, Any], event: dict[str, Any]) -> list[Entry]:
        """A ``Type/id`` reference (as our events write them) parsed directly; others the generic way."""
        param = self._param(code)
        ref = what.get("reference")
        if param is None or param.type != "reference" or len(what) != 1 or not isinstance(ref, str) or "/" not in ref:
            return self._index(code, what, "Reference", event)
        found = parse_reference(ref, self.indexer.options)
        return [Entry("reference", param.code, found)] if found else []

    def entries(self, event: dict[str, Any]) -> list[Entry]:
        """The search entries of ``event``, exactly as ``indexer.entries(event)`` computes them."""
        indexer = self.indexer
        if not TOP.issuperset(event):
            return indexer.entries(event)
        registry = indexer.registry
        if registry.version != self._version:
            self._static.clear()
            self._roles.clear()
            self._params.clear()
            self._version = registry.version
        entities = event.get("entity") or ()
        for entity in entities:
            if not ENTITY.issuperset(entity) or not WHO.issuperset(entity.get("what") or {}):
                return indexer.entries(event)
        key = dumps([event.get(k) for k in STATIC])
        static = self._static.get(key)
        if static is None:
            part = {k: event[k] for k in STATIC if k in event}
            if not _known(part):
                return indexer.entries(event)
            static = tuple(dict.fromkeys(e for code, value, fhir_type in _values(part)
                                         for e in self._index(code, value, fhir_type, event)))
            _remember(self._static, key, static)
        out = list(static)
        if "recorded" in event:
            out += self._date(event["recorded"], event)
        roles_seen: set[bytes] = set()
        refs_seen: set[str] = set()
        repeats = False
        for entity in entities:
            what = entity.get("what")
            if what:
                ref = what.get("reference")
                if isinstance(ref, str) and ref not in refs_seen:
                    refs_seen.add(ref)
                    out += self._reference("entity", what, event)
                    if _patient(what):
                        out += self._reference("patient", what, event)
                elif not isinstance(ref, str):
                    repeats = True
                    out += self._index("entity", what, "Reference", event)
                    if _patient(what):
                        out += self._index("patient", what, "Reference", event)
            role_key = dumps([entity.get("role"), entity.get("type")])
            if role_key in roles_seen:
                continue
            roles_seen.add(role_key)
            roles = self._roles.get(role_key)
            if roles is None:
                roles = tuple(self._index("entity-role", entity["role"], "Coding", event) if "role" in entity else ()) \
                    + tuple(self._index("entity-type", entity["type"], "Coding", event) if "type" in entity else ())
                _remember(self._roles, role_key, roles)
            out += roles
        if repeats or any(e.param in REFERENCED for e in static):
            return list(dict.fromkeys(out))
        return out


REFERENCED = frozenset({"entity", "patient", "entity-role", "entity-type", "date"})
"""Parameters the per-event part indexes: when a recurring element gives one of them too (an agent
that is a patient), the entries are de-duplicated as the generic indexer does."""


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value
