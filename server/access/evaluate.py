"""Whether one resource meets a condition, decided in memory from its search entries. Pure.

Used only where there is no stored row to query: a write under a query-restricted scope
(``user/Observation.cu?category=laboratory``) must itself match the query. The decision is
:func:`server.search.memory.holds`; chains and ``_has`` need other resources and are decided as
*not matching*, which refuses the write rather than widening the scope.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from server.search.index import Indexer
from server.search.memory import NeedsStore, Row, holds, tested_params
from server.search.model import Condition
from server.search.registry import SearchRegistry


@cache
def _indexer(registry: SearchRegistry) -> Indexer:
    return Indexer(registry)


def matches(cond: Condition, resource: dict[str, Any], registry: SearchRegistry) -> bool:
    try:
        params = tested_params(cond)
        entries = _indexer(registry).entries(resource, only=params) if params else []
        row = Row(str(resource.get("resourceType", "")), str(resource.get("id", "")))
        return holds(cond, row, entries)
    except NeedsStore:
        return False
