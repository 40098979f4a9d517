"""The query representation: plain frozen data shared by the search core and every store.

The parser (``server.search.parse``) lowers FHIR search semantics (prefixes, modifiers, precision,
partial dates, ``:above``/``:below``, chains, ``_has``) into these values; each store compiles them
(``server.stores.sqlite.compile`` -> SQL with bound parameters, ``server.stores.mongo.compile`` ->
filter documents). No search semantics live in a store: a store only knows how to test one
index entry's fields, and how to combine tests with and/or/not, chains and reverse chains.

Index entries (what the indexer extracts at write time) have exactly one stored shape per
table, listed in :data:`TABLES`; field names there are the only identifiers a store ever puts in a
query, so nothing in a request can become a column name or an operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --- index entries ------------------------------------------------------------------------------

TABLES: dict[str, tuple[str, ...]] = {
    # table: fields of one entry (besides the parameter code "param")
    "token": ("system", "code", "text"),
    "string": ("value", "exact"),
    "date": ("lo", "hi"),
    "number": ("lo", "hi"),
    "quantity": ("lo", "hi", "system", "code"),
    "reference": ("ref_type", "ref_id", "url"),
    "uri": ("value",),
    "composite": ("key", "lo", "hi"),
}
"""Entry shapes. ``string.value`` is normalised (case- and accent-folded), ``exact`` is as written.
``date`` lo/hi are integer microseconds since 1970-01-01T00:00Z, both inclusive. ``number`` and
``quantity`` lo/hi are floats (equal for an exact value). ``quantity`` system/code are the UCUM
canonical ones when the unit converts. ``reference`` holds ``ref_type``/``ref_id`` for references
to resources on this server and ``url`` for everything else (absolute URLs, canonicals).
``composite.key`` is a normalised tuple string built by the composite type module from the
discrete components (codes, references, strings); ``composite.lo``/``hi`` hold the range of a
quantity/date component (floats for quantities, µs for dates), or two point numbers (``lo`` the
first, ``hi`` the second), or null when the composite has no numeric component."""

Table = Literal["token", "string", "date", "number", "quantity", "reference", "uri", "composite"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One extracted search value: ``values`` aligns with ``TABLES[table]``."""

    table: Table
    param: str
    values: tuple[object, ...]

    def as_dict(self) -> dict[str, object]:
        return {"param": self.param, **dict(zip(TABLES[self.table], self.values, strict=True))}


# --- conditions ---------------------------------------------------------------------------------

FieldOp = Literal["eq", "in", "prefix", "contains", "lt", "le", "gt", "ge"]


@dataclass(frozen=True, slots=True)
class FieldTest:
    """A test on one field of one entry. ``in`` takes a tuple; ``prefix``/``contains`` take a str.

    A ``value`` of None with op ``eq`` means the field must be absent/null."""

    field: str
    op: FieldOp
    value: object


@dataclass(frozen=True, slots=True)
class Match:
    """True when the resource has at least one entry of ``table``/``param`` passing all ``tests``."""

    table: Table
    param: str
    tests: tuple[FieldTest, ...] = ()


@dataclass(frozen=True, slots=True)
class Missing:
    """``:missing``: true when the resource has no entry for ``param`` (``missing=True``) or has one."""

    table: Table
    param: str
    missing: bool


@dataclass(frozen=True, slots=True)
class ResourceTest:
    """A test on the resource row itself: ``id`` (eq/in) or ``last_updated`` (µs, range ops)."""

    field: Literal["id", "last_updated", "type"]
    op: FieldOp
    value: object


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


@dataclass(frozen=True, slots=True)
class Chain:
    """Forward chain: a ``reference`` entry of ``param`` points at a ``target_type`` resource
    (on this server) that satisfies ``where``."""

    param: str
    target_type: str
    where: Condition


@dataclass(frozen=True, slots=True)
class Has:
    """Reverse chain (``_has``): some ``source_type`` resource whose ``reference`` entry ``param``
    points at this resource satisfies ``where``."""

    source_type: str
    param: str
    where: Condition


@dataclass(frozen=True, slots=True)
class Always:
    """Matches every resource of the query's types (an empty criteria list)."""


Condition = Match | Missing | ResourceTest | And | Or | Not | Chain | Has | Always

# --- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    """Order by a parameter's entries (min for ascending, max for descending) or a row field."""

    table: Table | Literal["resource"]
    param: str
    """Parameter code, or for ``table == "resource"`` one of ``id`` / ``last_updated``."""
    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """What to find: resource types (empty = every type), a condition, an order and a page."""

    types: tuple[str, ...]
    where: Condition = field(default_factory=Always)
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    after: tuple[object, ...] | None = None
    """Keyset cursor: the sort-key values and (type, id) of the last row of the previous page."""
    total: Literal["none", "estimate", "accurate"] = "none"
