"""delete and conditional delete (http://hl7.org/fhir/R4/http.html#delete, #3.1.0.7.1)."""

from __future__ import annotations

from server.errors import NotSupported, TooManyMatches
from server.fhir.ids import is_valid_id
from server.interactions.conditional import matches
from server.interactions.result import Result
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.interactions.write import check_grant, check_type, store_version
from server.stores.base import Session


async def delete(
    svc: Services, type_: str, id_: str, *, if_match: int | None = None, session: Session | None = None
) -> Result:
    """Deleting a missing or already deleted resource is not an error (204, no new version)."""
    check_type(svc, type_)
    if not is_valid_id(id_):
        return Result(204)

    async def attempt(s: Session) -> Result:
        current = await s.read(type_, id_)
        if current is None or current.deleted:
            return Result(204, current)
        check_grant(svc, "delete", type_, None, current)
        version = await store_version(
            svc, s, None, type_=type_, id_=id_, current=current, method="DELETE", if_match=if_match
        )
        return Result(204, version)

    return await in_session(svc, session, attempt, keys=(resource_key(type_, id_),))


async def conditional_delete(
    svc: Services, type_: str, criteria: str, *, session: Session | None = None
) -> Result:
    """``DELETE Type?criteria``; several matches follow ``settings.conditional_delete``."""
    check_type(svc, type_)
    mode = svc.settings.conditional_delete
    if mode == "not-supported":
        raise NotSupported("Conditional delete is switched off on this server")
    limit = 2 if mode == "single" else svc.settings.conditional_delete_max + 1

    async def attempt(s: Session) -> Result:
        found = await matches(svc, s, type_, criteria, limit=limit)
        if len(found) >= limit:
            raise TooManyMatches(
                f"The criteria '{criteria}' match more than {limit - 1} {type_} resource(s); nothing was deleted"
            )
        last = None
        for id_ in found:
            last = await delete(svc, type_, id_, session=s)
        return Result(204, last.version if last is not None and len(found) == 1 else None)

    return await in_session(svc, session, attempt)
