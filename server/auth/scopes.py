"""SMART App Launch scope strings: validation of what a client registers or asks for, and which
requested scopes a registered set covers (the token endpoint grants requested ∩ registered).

The policy has its own parser (``server.access.scopes``) for deciding requests; this one only says
whether a string is a SMART v1/v2 scope and compares scopes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXT_SCOPES = frozenset({"launch", "launch/patient", "launch/encounter", "openid", "fhirUser", "profile",
                            "offline_access", "online_access"})
_CLINICAL = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(\?\S+)?")
_V2 = re.compile(r"c?r?u?d?s?")
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class ClinicalScope:
    context: str
    type: str
    permissions: frozenset[str]
    """The v2 letters (v1 ``read`` = ``rs``, ``write`` = ``cud``, ``*`` = all)."""
    query: str | None


def parse(scope: str) -> ClinicalScope | str:
    """A clinical scope, or the context scope itself; ValueError naming what is wrong."""
    if scope in CONTEXT_SCOPES:
        return scope
    m = _CLINICAL.fullmatch(scope)
    if not m:
        raise ValueError(f"'{scope}' is not a SMART scope (context/Type.permissions, e.g. system/Patient.rs)")
    context, type_, perms, query = m.groups()
    if perms in V1:
        if query:
            raise ValueError(f"'{scope}': a query restriction needs v2 permissions (e.g. .rs)")
        letters = V1[perms]
    elif perms and _V2.fullmatch(perms):
        letters = perms
    else:
        raise ValueError(f"'{scope}': permissions must be read, write, * or v2 letters in the order cruds")
    return ClinicalScope(context, type_, frozenset(letters), query[1:] if query else None)


def split(scopes: str) -> list[str]:
    return [s for s in scopes.split(" ") if s]


def check(scopes: str) -> None:
    """ValueError for an empty scope string or any item that is not a SMART scope."""
    items = split(scopes)
    if not items:
        raise ValueError("no scope given")
    for item in items:
        parse(item)


def covers(registered: ClinicalScope | str, wanted: ClinicalScope | str) -> bool:
    if isinstance(registered, str) or isinstance(wanted, str):
        return registered == wanted
    return (registered.context == wanted.context and registered.type in ("*", wanted.type)
            and wanted.permissions <= registered.permissions
            and (registered.query is None or registered.query == wanted.query))


def grant(requested: str | None, registered: str) -> str:
    """The requested scopes some registered scope covers (all registered ones when none is
    requested), space-separated in the order asked; ValueError for a requested item that is not
    a scope."""
    mine = [parse(s) for s in split(registered)]
    if requested is None or not requested.strip():
        return " ".join(split(registered))
    out = []
    for item in split(requested):
        wanted = parse(item)
        if any(covers(r, wanted) for r in mine) and item not in out:
            out.append(item)
    return " ".join(out)
