"""Comparison prefixes (eq ne gt lt ge le sa eb ap) lowered to tests on an entry's lo/hi.

Both the search value and each indexed value are ranges (search.html#prefix): a date ``2020``
is the whole year, a number ``5.4`` is [5.35, 5.45), a Period is [start, end]. With the search
range [sl, sh] and the target [lo, hi] the R4 definitions read:

- eq: [lo, hi] lies within [sl, sh];  ne: it does not (lo < sl or hi > sh)
- gt: hi > sh;  lt: lo < sl;  ge: gt or eq;  le: lt or eq
- sa: lo > sh (starts after);  eb: hi < sl (ends before)
- ap: [lo, hi] overlaps the approximate range [al, ah]

Numbers and quantities use the value's precision only for eq/ne/ap; for the others the value is
exact (sl == sh == v), which reduces ge/le to a single test (search.html#number).

A lowering is a tuple of alternatives, each a tuple of :class:`FieldTest` to be met by one
entry; :func:`matches` turns it into ``Match`` / ``Or`` conditions.
"""

from __future__ import annotations

from server.search.model import Condition, FieldTest, Match, Or, Table

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})

Alternatives = tuple[tuple[FieldTest, ...], ...]


def split_prefix(raw: str) -> tuple[str, str]:
    """``ge2020`` -> (``ge``, ``2020``); no prefix means ``eq``."""
    if raw[:2] in PREFIXES:
        return raw[:2], raw[2:]
    return "eq", raw


def range_tests(prefix: str, sl: object, sh: object, *, upper_open: bool = False,
                approx: tuple[object, object] | None = None, lo: str = "lo", hi: str = "hi") -> Alternatives:
    """Alternatives for ``prefix`` against search range [sl, sh] (or [sl, sh) if ``upper_open``);
    ``approx`` is the widened range for ``ap``. ``lo``/``hi`` name the entry fields tested (a
    composite with two point components maps each one onto a single field)."""
    inside = (FieldTest(lo, "ge", sl), FieldTest(hi, "lt" if upper_open else "le", sh))
    point = sl == sh
    if prefix == "eq":
        return (inside,)
    if prefix == "ne":
        return ((FieldTest(lo, "lt", sl),), (FieldTest(hi, "ge" if upper_open else "gt", sh),))
    if prefix == "gt":
        return ((FieldTest(hi, "gt", sh),),)
    if prefix == "lt":
        return ((FieldTest(lo, "lt", sl),),)
    if prefix == "ge":
        return ((FieldTest(hi, "ge", sl),),) if point else ((FieldTest(hi, "gt", sh),), inside)
    if prefix == "le":
        return ((FieldTest(lo, "le", sl),),) if point else ((FieldTest(lo, "lt", sl),), inside)
    if prefix == "sa":
        return ((FieldTest(lo, "gt", sh),),)
    if prefix == "eb":
        return ((FieldTest(hi, "lt", sl),),)
    if prefix == "ap":
        al, ah = approx if approx is not None else (sl, sh)
        return ((FieldTest(lo, "le", ah), FieldTest(hi, "ge", al)),)
    raise ValueError(prefix)


def matches(table: Table, param: str, alternatives: Alternatives,
            extra: tuple[FieldTest, ...] = ()) -> Condition:
    """``Match`` per alternative (each also carrying ``extra`` tests), or-ed together."""
    items = tuple(Match(table, param, extra + alt) for alt in alternatives)
    return items[0] if len(items) == 1 else Or(items)
