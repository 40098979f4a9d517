"""Which side answers a chain or ``_has``: one cost rule for both stores.

A chain (``subject:Patient.name=x``) or reverse chain (``_has:Observation:subject:code=y``) links
two sets: the *targets* its sub-query selects and the *candidates* the rest of the search selects.
A store answers it from one side:

* :attr:`Side.DRIVE_FROM_TARGETS` — run the sub-query, hold its ids (at most :data:`DRIVE_CAP`)
  and select the candidates that point at them (SQLite: the sub-query drives the join; MongoDB: an
  ``$in`` list of the ids). Cheap when the targets are few, whatever the size of the type.
* :attr:`Side.TEST_CANDIDATES` — take the candidates the rest selects (or the whole type in result
  order, a page's worth at a time) and test the chain on each (SQLite: a correlated ``EXISTS``;
  MongoDB: the candidates' references, a batch at a time, or an aggregation ``$lookup``). Cheap when
  the candidates are few, or when a page fills early.

Each store counts both sides with a limit (:data:`Estimate`: ``estimate(x, cap)``, a bounded read
of one index range, never a full count) and :func:`choose` decides. What is counted on the target
side is what that store would hold: SQLite counts the rows its driver yields (the candidates the
targets point at, or that point at them), MongoDB the sub-query's own ids (the ``$in`` list). Stores only *supply the
numbers*; the rule lives here, so both stores answer the same searches the same way (the search
contract, tests/http/test_search_contract.py) and ``__explain=true`` can name the side taken.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

DRIVE_CAP = 5000
"""Most ids a sub-query may hand to the outer query (and how far each side is counted). Why 5,000:
counting is a bounded index read, so the cap is also the most a wrong guess can cost; at 5,000
hits a search in the default order finds its page among the first rows of a walk sooner than a
driver can collect and sort all of its hits (measured on SQLite, where it was ``ESTIMATE_CAP``),
and an ``$in`` of 5,000 short ids is ~100 KB of filter, far below MongoDB's 16 MB document limit
(the earlier cap of 100,000 ids made filters of megabytes, parsed on every query)."""

Estimate = Callable[[Any, int], int | None]
"""A store's counter: the rows its query ``x`` selects, counted up to ``cap`` (``cap`` means "at
least that many"); None when the store cannot count it (no index answers it)."""


class Side(enum.Enum):
    """Which set a chain/``_has`` is answered from (see the module docstring)."""

    DRIVE_FROM_TARGETS = "drive from the targets"
    TEST_CANDIDATES = "test each candidate"


def cap() -> int:
    """The cap in force (read at call time, so tests can lower :data:`DRIVE_CAP`)."""
    return DRIVE_CAP


def choose(targets: int | None, candidates: int | None = None, limit: int | None = None) -> Side:
    """Drive from the targets when they are fewer than the cap and no more than the candidates;
    otherwise test each candidate.

    ``targets``: the sub-query's count (up to the cap), None when it cannot be counted (no index
    answers it: it can only be tested). ``candidates``: the count of what the rest of the search
    selects (up to the cap), None when nothing narrows it (the whole type). Ties go to the targets:
    their ids are one index range, the candidates' test one probe each."""
    top = cap() if limit is None else limit
    if targets is None or targets >= top:
        return Side.TEST_CANDIDATES
    if candidates is not None and candidates < targets:
        return Side.TEST_CANDIDATES
    return Side.DRIVE_FROM_TARGETS


def explain(name: str, side: Side, targets: int | None, candidates: int | None) -> str:
    """One ``__explain`` line: the side taken for sub-query ``name`` and the counts behind it."""

    def shown(n: int | None, what: str) -> str:
        if n is None:
            return f"{what} not counted"
        return f"{what} >= {cap()}" if n >= cap() else f"{n} {what}"

    return (f"{name}: {side.value} ({shown(targets, 'targets')}, "
            f"{shown(candidates, 'candidates') if candidates is not None else 'candidates: the whole type'}; "
            f"cap {cap()})")
