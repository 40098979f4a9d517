"""create and conditional create (http://hl7.org/fhir/R4/http.html#create, #ccreate)."""

from __future__ import annotations

from typing import Any

from server.errors import Issue, TooManyMatches
from server.fhir.ids import new_id
from server.interactions.conditional import condition, matches
from server.interactions.masking import stamp
from server.interactions.result import Result
from server.interactions.retry import in_session
from server.interactions.services import Services
from server.interactions.write import (
    Prepared,
    check_body,
    check_grant,
    check_type,
    prepare_large,
    store_version,
    validate,
)
from server.stores.base import Session


async def create(
    svc: Services,
    type_: str,
    resource: dict[str, Any],
    *,
    if_none_exist: str | None = None,
    session: Session | None = None,
    id_: str | None = None,
    prepared: Prepared | None = None,
) -> Result:
    """Create with a server-assigned id (``id_`` lets a transaction pre-assign one for urn:uuid)."""
    check_type(svc, type_)
    check_body(resource, type_)
    resource.pop("id", None)  # the server assigns the id of a created resource (http.html#create)
    stamp(svc, resource)  # source institution and grading, before validating and indexing (both searchable)
    check_grant(svc, "create", type_, resource, None)
    if if_none_exist is not None:
        condition(svc, type_, if_none_exist)  # criteria that filter nothing: a 400 before any 422
    if prepared is None:  # a large resource is validated and indexed in a thread (see .offload)
        prepared = await prepare_large(svc, resource)
    warnings = prepared.issues if prepared is not None else validate(svc, resource)

    async def attempt(s: Session) -> Result:
        if if_none_exist is not None:  # an empty one is refused by matches(), not taken for "no condition"
            found = await matches(svc, s, type_, if_none_exist)
            if len(found) > 1:
                raise TooManyMatches(f"If-None-Exist '{if_none_exist}' matches more than one {type_}")
            if found:
                existing = await s.read(type_, found[0])
                info = Issue("information", "duplicate", f"{type_}/{found[0]} already matches '{if_none_exist}'")
                return Result(200, existing, issues=[info])
        version = await store_version(svc, s, resource, type_=type_, id_=id_ or new_id(), current=None, method="POST",
                                      entries=prepared.entries if prepared is not None else None)
        return Result(201, version, issues=warnings, created=True)

    return await in_session(svc, session, attempt)
