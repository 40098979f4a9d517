"""patch with JSON Patch (http://hl7.org/fhir/R4/http.html#patch, RFC 6902), plain and conditional.

The patched resource goes through the same validation as an update, and may change neither its
resourceType nor its id.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from server.errors import BadRequest, Gone, NotFound, TooManyMatches, Unprocessable
from server.fhir.json import check_shape, load_stored
from server.interactions.conditional import matches
from server.interactions.masking import stamp
from server.interactions.result import Result
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.interactions.update import write_over
from server.interactions.visibility import can_see
from server.interactions.write import check_grant, check_type
from server.stores.base import Session


def _patch_document(patch: Any) -> jsonpatch.JsonPatch:
    """The parsed patch; 400 when it is not a JSON Patch document, including an operation whose
    ``path`` or ``from`` is not a JSON Pointer (RFC 6901: empty or starting with ``/``; ``~`` only
    in ``~0``/``~1``) -- jsonpatch parses ``path`` here but ``from`` only when applying."""
    if not isinstance(patch, list):
        raise BadRequest("A JSON Patch document must be a JSON array of operations")
    for index, operation in enumerate(patch):
        for key in ("path", "from"):
            pointer = operation.get(key) if isinstance(operation, dict) else None
            if isinstance(pointer, str):
                try:
                    jsonpatch.JsonPointer(pointer)
                except jsonpatch.JsonPointerException as exc:
                    raise BadRequest(f"JSON Patch operation {index}: '{key}' {pointer!r} is not a JSON Pointer "
                                     f"({exc})") from None
    try:
        return jsonpatch.JsonPatch(patch)
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError, AttributeError) as exc:
        raise BadRequest(f"Invalid JSON Patch document: {exc}") from None


def apply_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``resource`` with ``patch`` applied; 422 when it cannot be applied or leaves no resource of the
    same type and id with an object ``meta`` (the server stamps ``meta``, so any other shape is the
    patch's error, not a 500 later)."""
    document = _patch_document(patch)
    try:
        result = document.apply(copy.deepcopy(resource))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Unprocessable(f"JSON Patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException, jsonpatch.JsonPatchException) as exc:
        raise Unprocessable(f"JSON Patch could not be applied: {exc}") from None
    if not isinstance(result, dict):
        raise Unprocessable("JSON Patch must leave a resource (a JSON object)")
    if result.get("resourceType") != resource["resourceType"]:
        raise Unprocessable("JSON Patch may not change the resourceType", expression=("resourceType",))
    if result.get("id") != resource.get("id"):
        raise Unprocessable("JSON Patch may not change the resource id", expression=("id",))
    if "meta" in result and not isinstance(result["meta"], dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(result["meta"]), "null")
        raise Unprocessable(f"JSON Patch must leave meta a JSON object, not {kind}", expression=("meta",))
    return result


async def patch(
    svc: Services,
    type_: str,
    id_: str,
    operations: Any,
    *,
    if_match: int | None = None,
    session: Session | None = None,
) -> Result:
    """The patch is applied to the version read here and stored with compare-and-set on exactly
    that version; when another write got in between, the whole patch is re-run (:mod:`.retry`)."""
    check_type(svc, type_)
    _patch_document(operations)

    async def attempt(s: Session) -> Result:
        current = await s.read(type_, id_)
        if current is None or not (svc.grant.open or not current.deleted or await can_see(svc, current)):
            raise NotFound(f"{type_}/{id_} is not known")
        if current.deleted or current.body is None:
            raise Gone(f"{type_}/{id_} was deleted")
        # before the patch runs: its 'test' operations must not probe another institution's content
        check_grant(svc, "update", type_, None if svc.grant.open else load_stored(current.body), current)
        patched = apply_patch(load_stored(current.body), operations)
        check_shape(patched, what="patched resource")
        stamp(svc, patched)
        check_grant(svc, "update", type_, patched, current)
        return await write_over(svc, s, patched, type_=type_, id_=id_, current=current, if_match=if_match,
                                method="PATCH", warnings=None)

    return await in_session(svc, session, attempt, keys=(resource_key(type_, id_),))


async def conditional_patch(
    svc: Services, type_: str, criteria: str, operations: Any, *, if_match: int | None = None,
    session: Session | None = None,
) -> Result:
    check_type(svc, type_)

    async def attempt(s: Session) -> Result:
        found = await matches(svc, s, type_, criteria)
        if not found:
            raise NotFound(f"No {type_} matches '{criteria}'")
        if len(found) > 1:
            raise TooManyMatches(f"The criteria '{criteria}' match more than one {type_}; nothing was patched")
        return await patch(svc, type_, found[0], operations, if_match=if_match, session=s)

    return await in_session(svc, session, attempt)
