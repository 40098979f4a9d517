"""update, update-as-create and conditional update (http://hl7.org/fhir/R4/http.html#update, #cond-update)."""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest, Issue, TooManyMatches
from server.fhir.ids import new_id
from server.fhir.json import load_stored
from server.interactions.conditional import matches
from server.interactions.masking import stamp
from server.interactions.result import Result
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.interactions.write import (
    body_id,
    check_body,
    check_grant,
    check_type,
    check_update_id,
    last_content,
    prepare_large,
    same_content,
    store_version,
    validate,
)
from server.search.model import Entry
from server.stores.base import Method, Session, Version


async def update(
    svc: Services,
    type_: str,
    id_: str,
    resource: dict[str, Any],
    *,
    if_match: int | None = None,
    session: Session | None = None,
    method: Method = "PUT",
) -> Result:
    check_type(svc, type_)
    check_body(resource, type_)
    check_update_id(resource, id_)
    stamp(svc, resource)  # source institution and grading, before validating and indexing (both searchable)
    # A lone update validates before it takes the write lock. Inside a transaction the lock is held
    # already: there validation waits until the update is known to change something.
    prepared = await prepare_large(svc, resource) if session is None else None  # in a thread (see .offload)
    warnings = validate(svc, resource) if session is None and prepared is None else None
    if prepared is not None:
        warnings = prepared.issues

    async def attempt(s: Session) -> Result:
        current = await s.read(type_, id_)
        live = current is not None and not current.deleted
        # over a deletion: decided as a create against the last content (it names the id's owner)
        check_grant(svc, "update" if live else "create", type_, resource,
                    current if live or svc.grant.open else await last_content(svc, current))
        return await write_over(svc, s, resource, type_=type_, id_=id_, current=current, if_match=if_match,
                                method=method, warnings=warnings,
                                entries=prepared.entries if prepared is not None else None)

    return await in_session(svc, session, attempt, keys=(resource_key(type_, id_),))


async def write_over(
    svc: Services,
    session: Session,
    resource: dict[str, Any],
    *,
    type_: str,
    id_: str,
    current: Version | None,
    if_match: int | None,
    method: Method,
    warnings: list[Issue] | None,
    entries: list[Entry] | None = None,
) -> Result:
    """Store ``resource`` as the version after ``current``, the version the caller read and computed
    it from (a patch computes from the version it patched: re-reading here could compare-and-set
    against a newer version and silently drop that one's change). ``warnings`` None: validate
    here, once the write is known to change something."""
    if (
        current is not None
        and not current.deleted
        and current.body is not None
        and (if_match is None or if_match == current.version)
        and same_content(load_stored(current.body), resource)
    ):
        return Result(200, current, issues=warnings or [])  # nothing changed: no new version
    if warnings is None:
        prepared = await prepare_large(svc, resource)  # a large one in a thread (see .offload)
        warnings = prepared.issues if prepared is not None else validate(svc, resource)
        entries = prepared.entries if prepared is not None else entries
    version = await store_version(
        svc, session, resource, type_=type_, id_=id_, current=current, method=method, if_match=if_match,
        entries=entries,
    )
    created = current is None or current.deleted
    return Result(201 if created else 200, version, issues=warnings, created=created)


async def conditional_update(
    svc: Services,
    type_: str,
    criteria: str,
    resource: dict[str, Any],
    *,
    if_match: int | None = None,
    session: Session | None = None,
    matched: list[str] | None = None,
) -> Result:
    """``PUT Type?criteria``: no match creates, one match updates it, several answer 412.

    ``matched``: the ids a transaction already found for these criteria under the same session
    (it resolves every conditional entry before writing, so its references and its writes agree)."""
    check_type(svc, type_)
    check_body(resource, type_)
    rid = body_id(resource)  # the client's, read once: a re-run must not take an id an attempt set

    async def attempt(s: Session) -> Result:
        found = matched if matched is not None else await matches(svc, s, type_, criteria)
        if len(found) > 1:
            raise TooManyMatches(f"The criteria '{criteria}' match more than one {type_}; nothing was updated")
        if found:
            if rid is not None and rid != found[0]:
                raise BadRequest(
                    f"The resource id '{rid}' differs from the matching {type_}/{found[0]}",
                    expression=("id",),
                )
            resource["id"] = found[0]
        else:
            resource["id"] = rid if rid is not None else new_id()
        return await update(svc, type_, resource["id"], resource, if_match=if_match, session=s)

    return await in_session(svc, session, attempt)
