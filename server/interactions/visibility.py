"""Whether the caller may see a stored resource: the one place read, vread, history, includes,
compartments and ``$everything`` ask (the grant's :meth:`~server.access.grant.Grant.visible`
condition, decided for versions already in hand).

A hidden resource must look exactly like a missing one, so callers turn "not visible" into the
same 404 they answer for "not there".

How a version is decided:

- the open grant: always visible, at no cost (nothing here runs);
- a condition built only of index tests (``Match``, ``Missing``, ``ResourceTest``, ``And``/``Or``/
  ``Not``, ``Always``; e.g. the source-institution tag, a query-restricted scope, a patient's
  compartment) is decided on the version's own index entries: for the current version by the
  store, on the entries it holds (the embedded store: one statement of index seeks, cheaper than
  parsing the body; the entries searches see), otherwise in memory on the body's entries, computed
  only for the parameters the condition names;
- a condition with a chain or ``_has`` (it needs other resources) is put to the store as one
  query on the resource's id, so it decides on the resource's *current* state; a resource whose
  current version is deleted is then hidden.

A deletion (no body) is visible when the version before it was: the caller who could see a
resource may see that it was deleted (410); anyone else sees nothing (404).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from server.access.grant import How
from server.errors import Forbidden
from server.fhir.json import load_stored
from server.interactions.services import Services
from server.search.memory import NeedsStore, Row, holds, tested_params
from server.search.model import Always, And, Condition, Entry, Query, ResourceTest
from server.stores.base import Version


def _row(version: Version) -> Row:
    return Row(version.type, version.id, version.last_updated)


def _entries(svc: Services, resource: dict[str, Any], params: frozenset[str]) -> list[Entry]:
    """The index entries of ``resource`` for ``params`` only (what the condition tests)."""
    return svc.indexer.entries(resource, only=params) if params else []


async def _live(svc: Services, version: Version) -> Version | None:
    """The version whose content decides ``version``: itself, or for a deletion the one before it."""
    if not version.deleted and version.body is not None:
        return version
    number = version.version - 1
    while number >= 1:
        before = await svc.store.vread(version.type, version.id, number)
        if before is None:
            return None
        if not before.deleted and before.body is not None:
            return before
        number -= 1
    return None


async def _in_store(svc: Services, type_: str, ids: Iterable[str], where: Condition) -> set[str]:
    """Which of ``ids`` the store finds visible now (one query)."""
    wanted = tuple(sorted(set(ids)))
    if not wanted:
        return set()
    query = Query((type_,), And((ResourceTest("id", "in", wanted), where)), count=len(wanted))
    result = await svc.store.search(query)
    return {v.id for v in result.rows}


async def can_see(svc: Services, version: Version | None, how: How = "read") -> bool:
    """Whether the caller may see the resource ``version`` belongs to (as of that version); 403
    naming the Consent when the role may see it but the patient's Consent refuses the caller."""
    seen = await _can_see(svc, version, how)
    if not seen and version is not None and svc.grant.consent_refusals(version.type):
        await _refuse_by_consent(svc, version, how)
    return seen


async def read_visible(svc: Services, type_: str, id_: str) -> Version | None:
    """The current version of ``type_/id_`` when the caller may see it (as :func:`can_see`), else
    None, exactly as a missing resource. A condition of index tests only is decided together with
    the read where the store can (the embedded store: one statement for both)."""
    grant = svc.grant
    if grant.open:
        return await svc.store.read(type_, id_)
    where = grant.visible(type_, "read")
    if isinstance(where, Always):
        return await svc.store.read(type_, id_)
    decided: bool | None = None
    if where is not None and _index_tests_only(where):
        version, decided = await svc.store.read_holding(type_, id_, where)
    else:
        version = await svc.store.read(type_, id_)
    if version is None:
        return None
    if decided is None:  # deleted, a store that leaves it to the body, or a condition needing the store
        return version if await can_see(svc, version) else None
    if decided:
        return version
    if grant.consent_refusals(type_):
        await _refuse_by_consent(svc, version, "read")
    return None


def _index_tests_only(where: Condition) -> bool:
    try:
        tested_params(where)
    except NeedsStore:
        return False
    return True


async def _refuse_by_consent(svc: Services, version: Version, how: How) -> None:
    """Raise :class:`~server.errors.Forbidden` naming the refusing Consent (its id, not its content)
    when ``version`` is visible to the caller's role and a refusal of its Consents holds."""
    if not await _can_see(svc.for_grant(svc.grant.without_consent()), version, how):
        return  # hidden for another reason: a 404 like any other
    live = await _live(svc, version)
    if live is None or live.body is None:
        return
    resource = load_stored(live.body)
    for consent, where in svc.grant.consent_refusals(version.type):
        if holds(where, _row(live), _entries(svc, resource, tested_params(where))):
            reason = f"Consent/{consent} of the patient" if consent else \
                "the regional default (opt-in): no Consent of the patient permits it"
            raise Forbidden(f"Access to {version.type}/{version.id} is denied by {reason}")


async def _can_see(svc: Services, version: Version | None, how: How = "read") -> bool:
    if version is None:
        return False
    grant = svc.grant
    if grant.open:
        return True
    where = grant.visible(version.type, how)
    if where is None:
        return False
    if isinstance(where, Always):
        return True
    try:
        params = tested_params(where)
    except NeedsStore:
        return bool(await _in_store(svc, version.type, (version.id,), where))
    return await _holds_for(svc, version, where, params)


async def _holds_for(svc: Services, version: Version, where: Condition, params: frozenset[str]) -> bool:
    """``where`` (index tests only) on ``version``: decided by the store on the entries it holds when
    it is the current version (no parse, no FHIRPath: a read's common case), else on its body's."""
    if not version.deleted and version.body is not None:
        stored = await svc.store.current_holds(version.type, version.id, version.version, where)
        if stored is not None:
            return stored
    live = await _live(svc, version)
    if live is None or live.body is None:
        return False
    return holds(where, _row(live), _entries(svc, load_stored(live.body), params))


async def visible_versions(svc: Services, versions: Sequence[Version], how: How = "read") -> list[Version]:
    """The versions of ``versions`` the caller may see, in order (history pages, includes):
    evaluated in memory where the condition allows, else one store query per type."""
    grant = svc.grant
    if grant.open or not versions:
        return list(versions)
    kept: dict[int, bool] = {}
    by_store: dict[str, list[int]] = {}
    conditions: dict[str, Condition | None] = {}
    for index, version in enumerate(versions):
        if version.type not in conditions:
            conditions[version.type] = grant.visible(version.type, how)
        where = conditions[version.type]
        if where is None:
            kept[index] = False
            continue
        if isinstance(where, Always):
            kept[index] = True
            continue
        try:
            params = tested_params(where)
        except NeedsStore:
            by_store.setdefault(version.type, []).append(index)
            continue
        kept[index] = await _holds_for(svc, version, where, params)
    for type_, indexes in by_store.items():
        where = conditions[type_]
        assert where is not None
        seen = await _in_store(svc, type_, (versions[i].id for i in indexes), where)
        for i in indexes:
            kept[i] = versions[i].id in seen
    return [v for i, v in enumerate(versions) if kept.get(i)]
