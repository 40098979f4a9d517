"""What a resident sees of the AuditEvents about his or her own record (健康档案开放查询: "who read
my record"). Pure.

The institution that read the record, when, what for (purpose of use), the outcome and what was
read stay; the individual clinician or operator behind it is masked by policy: a person agent keeps
its role but loses its identity, and network addresses (which name machines inside a hospital) are
dropped. The client agent keeps its identifier only as the institution's system, not the person.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

PERSON_AGENT = "IRCP"
"""The participation type the audit gives a signed-in person (information recipient)."""
MASKED = {"display": "(masked)"}


def _is_person(agent: dict[str, Any]) -> bool:
    codings = agent.get("type", {}).get("coding", []) if isinstance(agent.get("type"), dict) else []
    return any(isinstance(c, dict) and c.get("code") == PERSON_AGENT for c in codings)


def for_resident(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` (an AuditEvent) as its resident may read it: clinicians masked, addresses dropped."""
    out = copy.deepcopy(event)
    for agent in out.get("agent", []) if isinstance(out.get("agent"), list) else []:
        if not isinstance(agent, dict):
            continue
        agent.pop("network", None)
        if _is_person(agent):
            agent["who"] = dict(MASKED)
            agent.pop("name", None)
            agent.pop("altId", None)
    return out


def in_body(body: dict[str, Any]) -> dict[str, Any] | None:
    """``body`` (a resource or a Bundle) with every AuditEvent in it redacted for a resident; None
    when it holds no AuditEvent (nothing to change)."""
    if body.get("resourceType") == "AuditEvent":
        return for_resident(body)
    if body.get("resourceType") != "Bundle":
        return None
    changed = False
    entries: list[Any] = []
    for entry in body.get("entry", []) if isinstance(body.get("entry"), list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, orjson.Fragment):  # a stored body passed through as its bytes
            raw = orjson.dumps(resource)
            if b'"AuditEvent"' not in raw:
                entries.append(entry)
                continue
            resource = orjson.loads(raw)
        if isinstance(resource, dict) and resource.get("resourceType") == "AuditEvent":
            entry = {**entry, "resource": for_resident(resource)}
            changed = True
        entries.append(entry)
    return {**body, "entry": entries} if changed else None
