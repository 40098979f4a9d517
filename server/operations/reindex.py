"""``$reindex``: bring stored resources' search entries up to date after a SearchParameter change.

R4 defines no reindex operation; this follows the common server practice (HAPI's ``$reindex``)
and the asynchronous request pattern (http://hl7.org/fhir/R4/async.html):

- ``POST [base]/[type]/[id]/$reindex`` reindexes one resource at once: 200 with an
  OperationOutcome (404 for an unknown or deleted resource).
- ``POST [base]/[type]/$reindex`` and ``POST [base]/$reindex`` (optionally ``_type=A,B``) start a
  background job (:mod:`server.jobs.reindex`): 202 Accepted, ``Content-Location`` naming the
  job's ``Task``, whose ``status`` and ``output`` (``processed``/``total``) show its progress.
  System level without ``_type`` covers every type that has resources.

It changes stored data, so only POST is accepted (405 for GET).
"""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest, Gone, Issue, NotFound, NotSupported
from server.interactions.result import Result
from server.interactions.visibility import can_see
from server.jobs.reindex import CODE, reindex_versions
from server.operations.registry import Invocation, Operation


def _outcome(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [Issue("information", "informational", text).to_fhir()]}


def _types(inv: Invocation) -> list[str] | None:
    """The ``_type`` list of a system-level call (None when absent)."""
    values = [v for v in inv.all("_type") if v is not None]
    if not values:
        return None
    if inv.level != "system":
        raise BadRequest("_type is only allowed at system level ($reindex on a type reindexes that type)",
                         expression=("_type",))
    types: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise BadRequest("_type takes resource type names", expression=("_type",))
        for name in (t.strip() for t in value.split(",")):
            if name not in inv.svc.resource_types:
                raise BadRequest(f"_type: '{name}' is not a resource type", expression=("_type",))
            types.append(name)
    return list(dict.fromkeys(types))


async def run(inv: Invocation) -> Result:
    svc = inv.svc
    types = _types(inv)
    if inv.level == "instance":
        current = await svc.store.read(inv.type or "", inv.id or "")
        if current is None or not (svc.grant.open or await can_see(svc, current)):
            raise NotFound(f"{inv.type}/{inv.id} is not known")
        if current.deleted:
            raise Gone(f"{inv.type}/{inv.id} was deleted")
        done = await reindex_versions(svc, [current])
        text = f"Reindexed {inv.type}/{inv.id} version {current.version}" if done else \
            f"{inv.type}/{inv.id} changed meanwhile and was indexed by that write"
        return Result(200, resource=_outcome(text))
    if svc.jobs is None:
        raise NotSupported("Background jobs are not running on this server")
    if inv.level == "type" and inv.type:
        types = [inv.type]
    elif types is None:
        types = sorted((await svc.store.stats())["resources"])
    task_id = await svc.jobs.submit(CODE, [("type", t) for t in types],
                                    f"$reindex of {', '.join(types) if types else 'nothing (the store is empty)'}")
    location = f"{inv.base}/Task/{task_id}"
    return Result(202, resource=_outcome(f"Reindex job accepted; its progress is at {location}"),
                  headers={"Content-Location": location})


OPERATION = Operation(
    name="reindex",
    levels=frozenset({"system", "type", "instance"}),
    handler=run,
    affects_state=True,
    documentation="Re-extract search entries after SearchParameter changes (asynchronous at system/type level)",
)
