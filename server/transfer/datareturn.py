"""``Task/{id}/$data-return``: the export of an approved data return (数据回流, issue 16 §3).

The workflow: a district creates a ``data-return`` Task (code of
:data:`~server.access.transfer.TASK_CODE_SYSTEM`, status requested, ``requester`` its Organization by
identifier, ``reasonCode``/``description`` the purpose, ``input`` the data it asks for: parts whose
``type.text`` is ``_type``, ``_typeFilter`` or ``_since`` with a ``valueString``/``valueInstant``); the
platform approves (status accepted) or rejects it (the policy's Task rules). Then the requesting
district — and only it — invokes ``POST Task/{id}/$data-return`` (``Prefer: respond-async``): a
Patient-level Bulk Data ``$export`` (:mod:`server.operations.bulk`, helper L's) runs with the Task's
parameters for the district's own principal, so its grant restricts it to the residents the district
manages (and their Consents), and the files are served to that client (and the platform) only. The
status URL is added to the Task's ``output`` (type ``export``). A Task not accepted is a 403, as is a
district's plain ``$export`` (the policy).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from server.access.transfer import DATA_RETURN_TASK, party_identifier, task_code
from server.errors import BadRequest, Forbidden, NotFound
from server.fhir.instant import to_instant
from server.interactions.result import Result
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.stores.base import Session
from server.transfer.operations import Invoked
from server.transfer.record import StoreReader, body, visible, write

EXPORT_INPUTS = frozenset({"_type", "_typeFilter", "_since"})
RUNNING = frozenset({"accepted", "in-progress"})

Inv = TypeVar("Inv", bound=Invoked)


def export_params(task: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``$export`` parameters a data-return Task asks for (400 naming an unknown one)."""
    out: list[tuple[str, Any]] = []
    for item in task.get("input") or ():
        kind = (item.get("type") or {}) if isinstance(item, dict) else {}
        names = [kind.get("text"), *(c.get("code") for c in kind.get("coding") or () if isinstance(c, dict))]
        name = next((n for n in names if n in EXPORT_INPUTS), None)
        value = next((v for k, v in item.items() if k.startswith("value")), None) if isinstance(item, dict) else None
        if name is None:
            continue  # the purpose and other notes
        if not isinstance(value, str):
            raise BadRequest(f"Task input {name} must be a string value", expression=("Task.input",))
        out.append((name, value))
    return out


def handler(kick_off: Callable[[Inv], Awaitable[Result]]) -> Callable[[Inv], Awaitable[Result]]:
    """The ``$data-return`` handler around the Bulk Data kick-off ``kick_off`` (a Patient-level ``$export``)."""

    async def run(inv: Inv) -> Result:
        svc: Services = inv.svc
        tid = inv.id or ""
        version = await visible(svc, StoreReader(svc.store), "Task", tid)
        task = body(version)
        if task is None:
            raise NotFound(f"Task/{tid} is not known")
        if task_code(task) != DATA_RETURN_TASK:
            raise BadRequest(f"Task/{tid} is not a data-return Task")
        principal = svc.grant.principal
        if not svc.grant.open and (principal.role != "district"
                                   or party_identifier(task, "requester") != principal.institution):
            raise Forbidden("The data return is delivered to the district that requested it, with its own token")
        if task.get("status") not in RUNNING:
            raise Forbidden(f"Task/{tid} is {task.get('status')}: a data return runs only once the platform has "
                            "approved it (status accepted)")
        for key, _ in inv.params:
            if not key.startswith("_format"):
                raise BadRequest(f"$data-return takes no parameters ('{key}'): the Task's input says what is "
                                 "exported", expression=(key,))
        call = dataclasses.replace(inv, name="export", level="type", type="Patient", id=None,  # type: ignore[type-var]
                                   params=export_params(task))
        result = await kick_off(call)
        location = result.headers.get("Content-Location")
        if location:
            await _record(svc, tid, location)
        return result

    return run


async def _record(svc: Services, tid: str, location: str) -> None:
    """Add the export's status URL to the Task's output (an ordinary update by the requester)."""

    async def attempt(s: Session) -> None:
        current = await s.read("Task", tid)
        task = body(current)
        if current is None or task is None:
            return
        updated = copy.deepcopy(task)
        updated["output"] = [*(task.get("output") or ()), {"type": {"text": "export"}, "valueUrl": location}]
        updated["lastModified"] = to_instant(svc.clock())
        await write(svc, s, "Task", tid, current, updated)

    await in_session(svc, None, attempt, keys=(resource_key("Task", tid),))
