"""``$validate`` (http://hl7.org/fhir/R4/resource-operation-validate.html): validate a resource
against the core definitions (and the profiles it names or the ``profile`` parameter gives),
answering 200 with an OperationOutcome whatever the verdict."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread

from server.errors import BadRequest, Issue, NotFound
from server.fhir.json import load_stored
from server.interactions.result import Result
from server.interactions.visibility import can_see
from server.operations.registry import Invocation, Operation

MODES = ("create", "update", "delete", "profile")


def _outcome(issues: list[Issue]) -> dict[str, Any]:
    if not issues:
        issues = [Issue("information", "informational", "Validation successful: no issues found")]
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


async def run(inv: Invocation) -> Result:
    mode = inv.get("mode")
    if mode is not None and mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}", expression=("mode",))
    profiles = [p for p in inv.all("profile") if isinstance(p, str)]
    resource = inv.get("resource") if inv.resource is None else inv.resource
    if inv.level == "instance" and resource is None:
        current = await inv.svc.store.read(inv.type or "", inv.id or "")
        if current is None or current.body is None or not (inv.svc.grant.open or await can_see(inv.svc, current)):
            raise NotFound(f"{inv.type}/{inv.id} is not known")
        resource = load_stored(current.body)
    if mode == "delete":
        return Result(200, resource=_outcome([]))
    if not isinstance(resource, dict):
        raise BadRequest("$validate needs a resource: in the body, or as the 'resource' parameter")
    issues: list[Issue] = []
    if inv.type and resource.get("resourceType") != inv.type:
        issues.append(Issue("error", "invalid",
                            f"resourceType '{resource.get('resourceType')}' does not match '{inv.type}'",
                            ("resourceType",)))
    if mode == "update" and inv.id and resource.get("id") != inv.id:
        issues.append(Issue("error", "invalid", f"id '{resource.get('id')}' does not match '{inv.id}'", ("id",)))
    # in a worker thread: validating a large resource must not stall the event loop (server.interactions.offload)
    issues.extend(await anyio.to_thread.run_sync(partial(inv.svc.validate, resource, profiles=profiles,
                                                         complete=True)))
    return Result(200, resource=_outcome(issues))


OPERATION = Operation(
    name="validate",
    levels=frozenset({"type", "instance"}),
    handler=run,
    definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    inputs=frozenset({"resource", "mode", "profile"}),
)
