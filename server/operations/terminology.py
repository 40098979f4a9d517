"""The terminology operations over HTTP: ``CodeSystem/$lookup``, ``CodeSystem/$subsumes``,
``CodeSystem/$validate-code``, ``ValueSet/$validate-code``, ``ValueSet/$expand`` and
``ConceptMap/$translate``, at type and instance level, answered by the ``terminology`` package.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import FhirError, NotFound, UpstreamError
from server.interactions.result import Result
from server.interactions.visibility import can_see
from server.operations.registry import Invocation, Operation
from terminology import TerminologyError, default_terminology
from terminology.operations import OPERATIONS, invoke


def _error(exc: TerminologyError) -> FhirError:
    """The terminology service's refusal (unknown code system, bad input …) with its status."""
    return UpstreamError(str(exc), status=exc.status, code=exc.issue_code)


def _parameters(inv: Invocation) -> dict[str, Any] | None:
    """The POSTed Parameters as given (typed values intact), or None for a GET."""
    if inv.method != "POST" or not inv.body.strip():
        return None
    data = orjson.loads(inv.body)
    return data if isinstance(data, dict) and data.get("resourceType") == "Parameters" else None


async def run(inv: Invocation) -> Result:
    term = inv.svc.terminology or default_terminology()
    instance_url = None
    if inv.level == "instance":
        current = await inv.svc.store.read(inv.type or "", inv.id or "")
        if current is None or current.deleted or current.body is None or not (
                inv.svc.grant.open or await can_see(inv.svc, current)):
            raise NotFound(f"{inv.type}/{inv.id} is not known")
        instance_url = orjson.loads(current.body).get("url")
    query: dict[str, list[str]] = {}
    for key, value in inv.params:
        if isinstance(value, str):
            query.setdefault(key, []).append(value)
    try:
        answer = invoke(term, inv.type or "", inv.name, parameters=_parameters(inv),
                        query=None if inv.method == "POST" else query, instance_url=instance_url)
    except TerminologyError as exc:
        raise _error(exc) from None
    return Result(200, resource=answer)


OPERATIONS_HTTP = [
    Operation(
        name=name,
        levels=frozenset({"type", "instance"}),
        handler=run,
        types=frozenset({type_}),
        definition=f"http://hl7.org/fhir/OperationDefinition/{type_}-{name}",
    )
    for type_, name in OPERATIONS
]
