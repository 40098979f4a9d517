"""Seams for access policy and audit, called around every interaction.

An *access policy* sees each request before it runs and may refuse it by raising
``server.errors.Forbidden`` (SMART scopes and consent checks plug in here). An *audit sink*
sees each finished interaction (an AuditEvent writer plugs in here). Both lists start empty;
``create_app(hooks=...)`` receives them, nothing looks them up globally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Access:
    """One interaction as the hooks see it."""

    interaction: str
    """FHIR interaction code: read, vread, create, update, patch, delete, search-type, history-…"""
    method: str
    path: str
    resource_type: str | None = None
    resource_id: str | None = None
    client: str | None = None
    status: int | None = None
    """Set for audit (after the interaction); None for the access policy (before)."""
    principal: object | None = None
    """The ``server.access.principal.Principal`` the request acts as (None before authentication or
    when it failed); typed loosely because hooks sit below the access layer."""
    query: str = ""
    """The raw query string of the request URL (searches: what was asked)."""
    address: str | None = None
    """The network address of the caller (the client socket's host)."""
    outcome: str | None = None
    """Why the request failed (the error's diagnostics); None when it succeeded."""
    resource: object | None = None
    """What the interaction read or wrote as the response body (a resource, a Bundle, or its JSON
    bytes): audit takes the patients and entities involved from it."""
    reference: str | None = None
    """``Type/id/_history/n`` of the version the interaction produced or found (create, update, read …)."""
    in_bundle: bool = False
    """An entry of a batch or transaction (checked after the Bundle itself was, possibly inside its
    store session)."""


AccessPolicy = Callable[[Access], Awaitable[None]]
AuditSink = Callable[[Access], Awaitable[None]]


@dataclass
class Hooks:
    access_policies: list[AccessPolicy] = field(default_factory=list)
    audit_sinks: list[AuditSink] = field(default_factory=list)

    async def check(self, access: Access) -> None:
        for policy in self.access_policies:
            await policy(access)

    async def audit(self, access: Access) -> None:
        for sink in self.audit_sinks:
            await sink(access)
