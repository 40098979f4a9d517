"""SMART App Launch scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html). Pure.

Resource scopes are ``context/Type.permissions[?query]``:

- context ``patient`` (the launch patient's compartment), ``user`` (what the user may see) or
  ``system`` (what the client may see);
- ``Type`` a resource type or ``*``;
- permissions v2 ``c r u d s`` (a subset, in that order: ``rs``, ``cruds``) or v1 ``read``
  (= ``rs``), ``write`` (= ``cud``), ``*`` (= ``cruds``);
- a v2 query (``patient/Observation.rs?category=laboratory``) narrows the scope to the resources
  matching it, as a search would.

Other scopes (``launch/patient``, ``openid``, ``fhirUser``, ``offline_access`` …) grant no access
to data and are returned as None by :func:`parse_scope`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Context = Literal["patient", "user", "system"]
Permission = Literal["c", "r", "u", "d", "s"]

V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_RESOURCE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(\?\S+)?$")
_V2 = re.compile(r"^c?r?u?d?s?$")
OTHER = frozenset({"launch", "launch/patient", "launch/encounter", "openid", "fhirUser", "profile",
                   "offline_access", "online_access"})


class ScopeError(ValueError):
    """A scope that looks like a resource scope but is malformed."""


@dataclass(frozen=True, slots=True)
class Scope:
    context: Context
    type: str
    """A resource type, or ``*``."""
    permissions: frozenset[str]
    query: str = ""
    """The v2 query string without ``?`` (empty: unrestricted)."""

    def covers(self, type_: str, permission: str) -> bool:
        return permission in self.permissions and self.type in ("*", type_)


def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` (None for a non-resource scope); :class:`ScopeError` when it is
    neither a known non-resource scope nor a well-formed resource scope."""
    match = _RESOURCE.match(text)
    if match is None:
        if text in OTHER:
            return None
        raise ScopeError(f"'{text}' is not a SMART scope (context/Type.permissions, e.g. system/Patient.rs)")
    context, type_, perms, query = match.groups()
    if perms in V1:
        if query:
            raise ScopeError(f"'{text}': a query needs v2 permissions (e.g. .rs)")
        permissions = V1[perms]
    elif perms and _V2.match(perms):
        permissions = frozenset(perms)
    else:
        raise ScopeError(f"'{text}': permissions must be read, write, * or v2 letters in the order cruds")
    return Scope(context, type_, permissions, (query or "")[1:])  # type: ignore[arg-type]


def parse_scopes(scopes: str | tuple[str, ...] | list[str]) -> list[Scope]:
    """The resource scopes of a space-separated string or a sequence of scope strings."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    return [s for s in (parse_scope(item) for item in items) if s is not None]


def narrow(requested: str, allowed: str) -> str:
    """The part of ``requested`` that ``allowed`` covers (a token never gets more than its client
    or user was registered with). A requested resource scope is kept, with its permissions cut to
    those an allowed scope of the same context grants for its type (``system/Patient.cruds`` under
    ``system/*.rs`` becomes ``system/Patient.rs``); an allowed scope with a query covers only the
    same query. Non-resource scopes are kept when ``allowed`` lists them."""
    allowed_items = allowed.split()
    allowed_scopes = parse_scopes(allowed_items)
    kept: list[str] = []
    for item in requested.split():
        scope = parse_scope(item)
        if scope is None:
            if item in allowed_items:
                kept.append(item)
            continue
        permissions: set[str] = set()
        for a in allowed_scopes:
            if a.context == scope.context and a.type in ("*", scope.type) and a.query in ("", scope.query):
                permissions |= scope.permissions & a.permissions
        if permissions == scope.permissions:
            kept.append(item)
        elif permissions:
            perms = "".join(p for p in "cruds" if p in permissions)
            kept.append(f"{scope.context}/{scope.type}.{perms}" + (f"?{scope.query}" if scope.query else ""))
    return " ".join(dict.fromkeys(kept))
