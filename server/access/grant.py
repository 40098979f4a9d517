"""A :class:`Grant`: the policy's decision for one principal, compiled once per request and
applied by the interactions at each point where they read or write.

The interactions never look at roles or scopes; they ask the grant:

- :meth:`Grant.visible` — the condition a stored resource of a type must meet to be seen (None: the
  type is not visible at all, ``Always()``: no restriction). It is compiled into queries by
  :meth:`Grant.restrict` (search, includes, chains, ``_has``, compartments, conditional matching),
  so paging and totals count only what the caller may see.
- :meth:`Grant.check_interaction` — 403 for an interaction on a type outside the token's scopes
  or the role (a *type* is no secret; a resource is: a hidden resource is a 404).
- :meth:`Grant.check_write` — 403 for a write the role or scopes do not allow, or to a resource
  another institution is the source of.
- :meth:`Grant.stamp` — sets ``meta.source`` and the source-institution tag on what is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from server.access.principal import OPEN, Principal
from server.search.model import Always, Condition, Query

if TYPE_CHECKING:
    from server.consent.evaluate import ConsentFacts

How = Literal["read", "search"]
WriteKind = Literal["create", "update", "delete"]


class Grant:
    """The open grant (authorization off): everything visible, every write allowed, nothing
    stamped. :mod:`server.access.policy` makes the restricted ones."""

    def __init__(self, principal: Principal = OPEN) -> None:
        self.principal = principal

    @property
    def open(self) -> bool:
        """True when nothing is restricted (callers may skip every check)."""
        return True

    def visible(self, type_: str, how: How = "read") -> Condition | None:
        return Always()

    @property
    def redacts_audit(self) -> bool:
        """Whether AuditEvents in responses show the individual people behind them masked."""
        return False

    def restrict(self, query: Query, how: How = "search") -> Query:
        """``query`` limited to what may be seen, at every level: the top-level types, and the
        targets of its chains and sources of its ``_has`` (a filter over hidden resources must not
        reveal them). Types that are not visible at all match nothing."""
        return query

    def restrict_where(self, type_: str, where: Condition, how: How = "read") -> Condition:
        """``where`` on ``type_`` limited likewise (conditional matching, includes by id)."""
        return where

    def check_interaction(self, interaction: str, type_: str | None) -> None:
        """Raise :class:`~server.errors.Forbidden` when ``interaction`` (a FHIR interaction code:
        read, vread, search-type, search-system, history-*, create, update, patch, delete,
        transaction, batch, operation) on ``type_`` is outside the scopes or the role."""

    def check_write(self, kind: WriteKind, type_: str, new: dict[str, Any] | None,
                    old: dict[str, Any] | None) -> None:
        """Raise :class:`~server.errors.Forbidden` when this write may not happen: ``new`` is what
        would be stored (None for a delete), ``old`` the current resource (None when there is none)."""

    def stamp(self, resource: dict[str, Any]) -> None:
        """Set ``meta.source`` and the source-institution ``meta.tag`` on ``resource`` (in place)."""

    def lifts(self, resource: dict[str, Any], level: int) -> bool:
        """Whether ``resource``, graded ``level`` above the caller's clearance, is shown unmasked all the
        same (issue 14 §3: level-5 data under a permitting Consent, or break-glass). The hook of the
        consent rules; by default a break-glass purpose of use (``BTG``) lifts it."""
        return self.principal.purpose == "BTG"

    # --- consent (issue 14 §1) ----------------------------------------------------------------

    @property
    def consent_applies(self) -> bool:
        """Whether this caller reaches other institutions' data about people, so the patients'
        Consents must be fetched for its requests (:mod:`server.consent.load`)."""
        return False

    def consent_reach(self) -> Condition:
        """Which Consents matter to this caller (those of the patients it can reach)."""
        return Always()

    def with_consent(self, facts: ConsentFacts) -> Grant:
        """This grant for one request, with the Consents it must honour."""
        return self

    def without_consent(self) -> Grant:
        """This grant before any Consent was applied (to tell "denied by consent" from "hidden")."""
        return self

    def consent_refusals(self, type_: str) -> tuple[tuple[str | None, Condition], ...]:
        """Conditions under which a ``type_`` resource visible to the role is refused by consent,
        each with the id of the refusing Consent (None: the opt-in default); empty when none."""
        return ()


OPEN_GRANT = Grant()
