"""Conformance resources take effect when they are stored: a CodeSystem, ValueSet or ConceptMap
written through the API is used by the terminology service, a StructureDefinition (profile,
extension) by the validator, from the next request on; deleting it withdraws it. Runs as a commit
listener, so a rolled-back transaction changes nothing, and at start-up over what the store holds.
"""

from __future__ import annotations

from typing import Any

import orjson

from profiles.registry import ProfileRegistry
from server.interactions.services import CommitListener, Services
from server.search.model import Always, Query
from server.stores.base import Version
from terminology import Terminology

TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
PROFILE_TYPES = ("StructureDefinition", "CodeSystem", "ValueSet", "Questionnaire", "ImplementationGuide")
"""Resources the profile registry resolves: profiles and extensions, the value sets and code
systems they bind to, Questionnaires for QuestionnaireResponse validation, and ImplementationGuides
for their global profiles (applied by ``$validate``)."""
KINDS = tuple(dict.fromkeys(TERMINOLOGY_TYPES + PROFILE_TYPES))


async def _previous_url(svc: Services, version: Version) -> str | None:
    """The url a deleted resource had (from the version before its deletion)."""
    if version.version < 2:
        return None
    previous = await svc.store.vread(version.type, version.id, version.version - 1)
    if previous is None or previous.body is None:
        return None
    url = orjson.loads(previous.body).get("url")
    return url if isinstance(url, str) else None


def register(profiles: ProfileRegistry | None, terminology: Terminology, resource: dict[str, Any]) -> None:
    """Make one stored conformance resource take effect (also how tests/profiles/test_validator_cases.py
    loads a case's supporting resources, so the in-process harness sees what the server sees)."""
    kind = resource.get("resourceType")
    if not isinstance(resource.get("url"), str):
        return
    if kind in TERMINOLOGY_TYPES:
        terminology.add(resource)
    if kind in PROFILE_TYPES and profiles is not None:
        profiles.add(resource)


def _apply(svc: Services, resource: dict[str, Any]) -> None:
    register(svc.profiles, svc.terminology, resource)


def _withdraw(svc: Services, kind: str, url: str) -> None:
    if kind in TERMINOLOGY_TYPES:
        svc.terminology.remove(url)
    if kind in PROFILE_TYPES and svc.profiles is not None:
        svc.profiles.remove(url)


def conformance_listener(svc: Services) -> CommitListener:
    async def on_commit(versions: list[Version]) -> None:
        for version in versions:
            if version.type not in KINDS:
                continue
            if version.deleted:
                url = await _previous_url(svc, version)
                if url:
                    _withdraw(svc, version.type, url)
            elif version.body is not None:
                _apply(svc, orjson.loads(version.body))

    return on_commit


async def load_stored(svc: Services, page: int = 500) -> int:
    """Register every stored conformance resource (start-up); returns how many."""
    loaded = 0
    after = None
    while True:
        result = await svc.store.search(Query(KINDS, Always(), count=page, after=after))
        for row in result.rows:
            if row.body is not None:
                _apply(svc, orjson.loads(row.body))
                loaded += 1
        if result.next_after is None:
            return loaded
        after = result.next_after
