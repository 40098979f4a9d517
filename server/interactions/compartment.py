"""Compartment search: ``GET [Compartment]/[id]/[type]?…`` and ``GET [Compartment]/[id]/*?…``
(http://hl7.org/fhir/R4/search.html#compartments, http://hl7.org/fhir/R4/compartmentdefinition.html).

The compartment becomes one more condition of an ordinary search (see
:mod:`server.search.compartment`), so every parameter, ``_include``, ``_sort`` and paging work
unchanged. Errors: an unknown resource type, or one that is not a compartment type
(``Organization/1/Observation``), is 404 (no such endpoint); a type that cannot be in the
compartment (``Patient/1/Organization``) is 400. The owner does not have to exist: the compartment
of an unknown patient is empty -- except under a restricted grant (authorization on), where an owner
the caller may not see answers 404 as a read does, and so must a missing one (else the difference
would tell that the hidden one exists); the members are then restricted like any search.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.errors import BadRequest, NotFound
from server.fhir.ids import is_valid_id
from server.interactions import search
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import can_see
from server.interactions.write import check_type
from server.search.compartment import COMPARTMENTS, Compartment, compartment, membership


def find_compartment(svc: Services, code: str) -> Compartment:
    """The compartment of type ``code``; 404 when it is not a resource type or not a compartment."""
    check_type(svc, code)
    found = compartment(svc.registry.definitions, code)
    if found is None:
        raise NotFound(f"{code} is not a compartment type (compartments: {', '.join(COMPARTMENTS)})")
    return found


async def compartment_search(
    svc: Services,
    params: Sequence[tuple[str, str]],
    *,
    base: str,
    compartment_type: str,
    owner_id: str,
    type_: str | None,
    strict: bool = False,
) -> Result:
    """Search ``type_`` (every member type when None, for ``*``) within ``compartment_type/owner_id``."""
    comp = find_compartment(svc, compartment_type)
    if not is_valid_id(owner_id):
        raise BadRequest(f"'{owner_id}' is not a valid resource id", expression=("id",))
    if type_ is not None:
        check_type(svc, type_)
        if not comp.contains_type(type_):
            raise BadRequest(f"{type_} resources are never in a {comp.code} compartment")
    if not svc.grant.open:
        owner = await svc.store.read(compartment_type, owner_id)
        if owner is None or owner.deleted or not await can_see(svc, owner, "search"):
            raise NotFound(f"{compartment_type}/{owner_id} is not known")
    types = (type_,) if type_ is not None else comp.types()
    return await search.search(
        svc, params, base=base, types=types, strict=strict,
        path=f"{compartment_type}/{owner_id}/{type_ or '*'}",
        within=membership(comp, owner_id, types),
    )
