"""The limits every search is held to, checked while parsing so that both stores accept and refuse
exactly the same requests (a store never meets a query larger than these).

A request over a limit is answered 400 with an OperationOutcome (issue code ``too-costly``) whose
``expression`` names the parameter that crossed it. The numbers are chosen so that the largest
accepted query stays well inside SQLite's compile-time limits, which the embedded store cannot
raise: parser stack depth (YYSTACKDEPTH 100, reached by nested sub-selects), expression depth
(1000), compound SELECT terms (500) and bound variables (250,000 in Debian's build, 32,766 in
SQLite's own default); ``tests/http/test_search_limits.py`` runs the largest accepted queries on
both stores.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.errors import SearchTooCostly

MAX_CHAIN_DEPTH = 3
"""Most hops along one path of a parameter name: each ``.`` of a chain and each ``_has:`` is one
(``subject:Patient.organization.partof.name`` has 3, ``_has:Observation:patient:subject.name`` 2).
Every hop is a nested sub-query in both stores (SQLite: two or three levels of parentheses; MongoDB:
one more round trip of ids), and without a type modifier each hop fans out over every target type,
so cost grows exponentially with depth. 3 covers every chain in the FHIR R4 examples; SQLite's
parser handles 4 on every compile path (forward, ``_has`` nested in ``_has``, chains inside
``_has``, with and without an index driver; 5 overflows its parser stack), one hop of margin."""

MAX_PARAMETERS = 100
"""Most parameters in one request: every ``name=value`` pair (criteria, ``_include``,
``_revinclude``, each result parameter) and every item of a ``_sort`` list count once. A repeated
parameter is an AND of one more sub-query or ``EXISTS`` term; 100 keeps an AND of them far below
SQLite's expression depth of 1000 even when each is an OR of values."""

MAX_VALUES = 100
"""Most comma-separated (OR-ed) values of one parameter. An OR of indexed values is a compound
``UNION`` on SQLite (limit 500 terms; a value may expand to a few terms) and an ``$or`` of
``$elemMatch`` branches on MongoDB."""

MAX_TOTAL_VALUES = 1000
"""Most OR-ed values summed over the whole request. A system search binds each value once per
searched type (about 150 in R4), so this keeps the bound variables of the largest query (about
150,000) under the 250,000 SQLite allows here."""

MAX_SORT_KEYS = 4
"""Most parameters in ``_sort`` (``_id``/``_lastUpdated`` not counted): MongoDB answers a sort
on k parameters as 2**k partition queries so that missing values sort last on both stores."""

MAX_QUERY_CHARS = 32_768
"""Most characters in all names and values together (a POST ``_search`` body has no URL limit)."""


def too_costly(name: str, message: str) -> SearchTooCostly:
    return SearchTooCostly(f"Search parameter '{name}': {message}", expression=(name,))


def hops(name: str) -> int:
    """Chain hops in a parameter name: parameter codes contain no ``.``, so each ``.`` is a forward
    hop, and each ``_has:`` a reverse one."""
    return name.count(".") + name.count("_has:")


def check_request(params: Sequence[tuple[str, str]]) -> None:
    """Raise :class:`SearchTooCostly` when ``params`` cross a request-wide limit (before any
    parameter is lowered: a 40-hop chain without type modifiers would fan out while lowering)."""
    chars = 0
    count = 0
    for name, value in params:
        chars += len(name) + len(value)
        if chars > MAX_QUERY_CHARS:
            raise too_costly(name, f"the search is longer than {MAX_QUERY_CHARS} characters")
        count += len([v for v in value.split(",") if v]) if name == "_sort" else 1
        if count > MAX_PARAMETERS:
            raise too_costly(name, f"more than {MAX_PARAMETERS} search parameters (each _sort item counts)")
        if hops(name) > MAX_CHAIN_DEPTH:
            raise too_costly(name, f"chains at most {MAX_CHAIN_DEPTH} hops deep (each '.' and '_has:' is one)")


def check_values(name: str, n: int, total_so_far: int) -> int:
    """Count ``n`` OR-ed values of ``name``; the new request total."""
    if n > MAX_VALUES:
        raise too_costly(name, f"more than {MAX_VALUES} comma-separated values")
    total = total_so_far + n
    if total > MAX_TOTAL_VALUES:
        raise too_costly(name, f"more than {MAX_TOTAL_VALUES} values in the whole search")
    return total
