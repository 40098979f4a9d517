"""``__explain=true``: the query plan a store ran for a search, rendered as text (Blaze-style).

The store-independent part lives here: the query model as the search core lowered it (types, the
condition tree, sort keys, page size, whether a cursor was given) followed by the store's own
sections (:class:`StorePlan`: SQLite's SQL, bound values and ``EXPLAIN QUERY PLAN`` rows; MongoDB's
filters, sorts, sub-query sizes and the server's winning plan). The search interaction returns the
text as the ``diagnostics`` of an OperationOutcome entry with ``search.mode = outcome``.

It reveals nothing the search itself does not: every value shown comes from the request, from this
server's fixed schema (table, field and index names) or from counts the client could obtain with
searches of its own (how many resources a sub-query selected), and a paging cursor's values come
from the page the client already has. Stores never put the ids of resources a sub-query found
into a plan (they show how many there were): those resources are not part of the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.search.model import (
    Always,
    And,
    Chain,
    Condition,
    Has,
    Match,
    Missing,
    Not,
    Or,
    Query,
    ResourceTest,
)

PARAMETER = "__explain"
"""The search parameter that asks for the plan (``__explain=true``, as Blaze names it)."""


@dataclass(frozen=True, slots=True)
class StorePlan:
    """What a store reports about how it ran a query: titled text sections, in order."""

    store: str
    sections: tuple[tuple[str, str], ...]


def describe(cond: Condition, indent: int = 0) -> list[str]:
    """The condition tree, one node a line, children indented."""
    pad = "  " * indent
    if isinstance(cond, Always):
        return [f"{pad}ALL"]
    if isinstance(cond, Match):
        tests = " AND ".join(f"{t.field} {t.op} {t.value!r}" for t in cond.tests) or "present"
        return [f"{pad}{cond.table}[{cond.param}]: {tests}"]
    if isinstance(cond, Missing):
        return [f"{pad}{cond.table}[{cond.param}]: {'missing' if cond.missing else 'present'}"]
    if isinstance(cond, ResourceTest):
        return [f"{pad}resource.{cond.field} {cond.op} {cond.value!r}"]
    if isinstance(cond, And | Or):
        return [f"{pad}{'AND' if isinstance(cond, And) else 'OR'}",
                *(line for item in cond.items for line in describe(item, indent + 1))]
    if isinstance(cond, Not):
        return [f"{pad}NOT", *describe(cond.item, indent + 1)]
    if isinstance(cond, Chain):
        return [f"{pad}CHAIN {cond.param} -> {cond.target_type} WHERE", *describe(cond.where, indent + 1)]
    if isinstance(cond, Has):
        return [f"{pad}HAS {cond.source_type}.{cond.param} -> this WHERE", *describe(cond.where, indent + 1)]
    return [f"{pad}{type(cond).__name__}"]


def render(query: Query, plan: StorePlan) -> str:
    """The plan as text: the query model, then the store's sections."""
    sort = ", ".join(f"{'-' if k.descending else ''}{k.param} ({k.table}.{k.field})" for k in query.sort)
    lines = [
        f"store: {plan.store}",
        f"types: {', '.join(query.types) or '(all)'}",
        "where:",
        *describe(query.where, 1),
        f"sort: {sort or '(none)'}, then type, id",
        f"count: {query.count}; total: {query.total}; cursor: {'yes' if query.after is not None else 'no'}",
    ]
    for title, text in plan.sections:
        lines += ["", f"{title}:", *("  " + line for line in text.splitlines())]
    return "\n".join(lines)
