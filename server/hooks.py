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
