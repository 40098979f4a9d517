"""Building blocks of the policy's conditions (pure): the condition that matches nothing, search
values made literal, and ``And``/``Or``/``Not`` that fold the constant cases away, so that a caller
who may see nothing gets :data:`NEVER` (which both stores answer without a query)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from server.search.model import Always, And, Condition, Not, Or, ResourceTest

NEVER: Condition = ResourceTest("id", "in", ())
"""Matches nothing (both stores compile it)."""


def literal(value: str) -> str:
    """``value`` as one literal search value in a query string: its search syntax escaped (a comma
    is an OR, ``|`` splits system and code) and URL-encoded (``&``, ``%``). An institution claim of
    an external issuer is not checked like a registered one; it must never widen the criteria."""
    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    return quote(escaped, safe="")


def simplify_and(items: Sequence[Condition]) -> Condition:
    kept: list[Condition] = []
    for item in items:
        if isinstance(item, Always):
            continue
        if item == NEVER:
            return NEVER
        kept.append(item)
    if not kept:
        return Always()
    return kept[0] if len(kept) == 1 else And(tuple(kept))


def simplify_or(items: Sequence[Condition]) -> Condition:
    kept: list[Condition] = []
    for item in items:
        if isinstance(item, Always):
            return Always()
        if item == NEVER or item in kept:
            continue
        kept.append(item)
    if not kept:
        return NEVER
    return kept[0] if len(kept) == 1 else Or(tuple(kept))


def simplify_not(item: Condition) -> Condition:
    if isinstance(item, Always):
        return NEVER
    if item == NEVER:
        return Always()
    return Not(item)
