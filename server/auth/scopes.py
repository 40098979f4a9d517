"""SMART App Launch scope strings as the token service meets them: checking what a client or user
registers or asks for, and granting what is asked within what is registered.

The scope grammar is the policy's (:mod:`server.access.scopes`): one parser decides both what a
token may carry and what it allows.
"""

from __future__ import annotations

from server.access.scopes import OTHER as CONTEXT_SCOPES
from server.access.scopes import narrow, parse_scope

__all__ = ["CONTEXT_SCOPES", "check", "grant", "split"]


def split(scopes: str) -> list[str]:
    return [s for s in scopes.split(" ") if s]


def check(scopes: str) -> None:
    """ValueError (:class:`~server.access.scopes.ScopeError`) for an empty scope string or any item
    that is not a SMART scope."""
    items = split(scopes)
    if not items:
        raise ValueError("no scope given")
    for item in items:
        parse_scope(item)


def grant(requested: str | None, registered: str) -> str:
    """What a token gets: the requested scopes within the registered ones (a requested scope's
    permissions cut to what is registered for its type), in the order asked; all registered ones
    when none is requested. ValueError for a requested item that is not a scope."""
    if requested is None or not requested.strip():
        return " ".join(split(registered))
    check(requested)
    return narrow(requested, registered)
