"""A sharded cluster, resident by resident: the shard key ``sk`` and the routing of queries. Pure.

Regional platforms hold tens of millions of residents' records and outgrow one machine. The unit
of look-up, ``$everything``, transfer and consent is one person's record, so the ``resources`` and
``history`` collections are sharded by the *resident* a resource belongs to (issue 12 §3).

The shard key ``sk`` (a field of every ``resources`` / ``history`` document and journal entry;
:func:`shard_key`, computed from the same search entries the queries match):

* **residents** of a resource = the ``Patient`` references of its Patient-compartment parameters
  (:func:`resident_params`: the R4 CompartmentDefinition's parameters for its type, plus parameters
  whose paths lie within them, such as Observation's ``patient`` ⊆ ``subject``), and for a Patient
  itself its own ``Patient/id``;
* exactly one resident ``Patient/X`` → ``sk = "Patient/X"``: the record of resident X, placed
  with the Patient resource itself;
* several residents (a Group's members, an Appointment with two patients, an Observation performed
  by one patient about another, a Patient ``link`` ed to a duplicate) → ``sk = SHARED``, one shared
  key value: such resources are few, and a query naming any resident also looks there;
* no resident (Organization, Practitioner, Medication, terminology, conformance resources, or an
  Observation about a Group) → ``sk = "Type/id"``, its own key, spread over the cluster by the
  hash. A deletion keeps the key its resource had (it is never matched by a search anyway).

Shard key pattern: ``{sk: "hashed"}`` (even spread, no hot chunk for new residents); with district
zones ``{sk: 1}`` ranged, and each zone is the range of resident ids that start with a GB/T 2260
district code (``Patient/110105…`` — ids issued by the regional master patient index carry the code
of the district that registered the person; :func:`zone_ranges`). ``sk`` is fixed by the id, so a
resident who moves keeps his shard until a re-home (the transfer operation gives the record a new
id in the new district, which moves its documents in one transaction per resource).

Routing. A search whose condition implies that every match is in the compartment of some resident
of a set S (:func:`residents_named`: a ``patient=``/``subject=``/compartment parameter with
``Patient/…`` values, a compartment search ``Patient/X/…``, ``Patient/X/$everything``, ``Patient?_id=X``)
gets the redundant conjunct ``{sk: {$in: [S…, SHARED]}}`` (:func:`route`), so mongos sends it to
at most |S| + 1 shards instead of all of them. It never changes the result: a match has some
``Patient/x`` of S among its residents, so its ``sk`` is ``Patient/x`` (sole resident) or SHARED.
:func:`shard_targets` reads the shard key back out of a compiled filter; the CI check
(tests/stores/test_mongo_sharding.py) asserts it on every patient-scoped query shape.

Scatter-gather (every shard answers, each from its own indexes, mongos merges): searches naming no
resident (``Observation?code=…``, ``Organization?name=…``, ``patient=123`` without the ``Patient/``
type — ``patient`` may also point at a Group), chains and ``_has`` sub-queries, history of a type
or the system, and reads by id of types other than Patient (``_id`` is not the shard key: one
``_id`` index probe per shard).

Unique constraints. ``_id`` ("Type/id") is unique per shard only once ``sk`` is the shard key, and
unique indexes must be prefixed by the shard key, so on a cluster the ``{type, id}`` /
``{type, id, version}`` indexes are created non-unique (:func:`non_unique`) and uniqueness of a
resource id across shards is kept by the ``ids`` collection (sharded by ``{_id: "hashed"}``, so
its ``_id`` *is* globally unique): every transactional write upserts ``{_id: "Type/id", sk}`` in the
same transaction, so two transactions creating the same id on different shards write the same
``ids`` document and one of them fails with a write conflict (retried, it then sees the other's
resource and becomes an update or a 409/412). Identifier uniqueness (conditional create,
``If-None-Exist``) and every match-then-write go through the lease locks of :mod:`.session`, kept
in the unsharded ``locks`` collection (one primary shard, one unique ``_id`` index: a global lock
for every mongos and API node), and the ``guard`` counters bumped inside the transaction.

Limits. All documents of one resident share one ``sk`` value, so they are one indivisible unit
for the balancer: a resident is never split across chunks, and a resident larger than the chunk
size (128 MiB by default since MongoDB 6.0) makes a "jumbo" chunk that stays where it is. Measured
on the 61 Synthea bundles of the samples (``tests/stores/test_mongo_sharding.py``, BSON as written,
before WiredTiger compression): 20,472 resident-keyed documents, 208 with their own key, none
shared; a current document averages 4.5 KB, its history version 1.7 KB; a resident has a median of
263 resources (1.6 MB, at most 955 and 5.9 MB), so a chunk holds about 80 such residents and a
single record would need ~20,000 resources to fill one. The SHARED value is one unit too: keep
multi-resident resources (Groups, multi-patient Appointments) well below a chunk, or they sit on
one shard as a jumbo chunk.

Transactions and the journal. A sharded cluster always offers multi-document transactions (shards
are replica sets), so every multi-write session is one distributed transaction through mongos;
the redo journal (:mod:`.journal`) is only for deployments without transactions and stays
unsharded. Changing a document's ``sk`` (a subject re-pointed to another resident) is a
replace that names the old ``sk`` in its filter, inside the session's transaction (MongoDB ≥ 4.2
moves the document between shards atomically then; outside a transaction the store's single
writes are retryable writes, which MongoDB also accepts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pymongo import IndexModel

from server.search.compartment import OWNER, compartment
from server.search.model import TABLES, And, Condition, Entry, FieldTest, Match, Or, ResourceTest
from server.search.registry import SearchRegistry

from .compile import Filter, conjoin, successor

SK = "sk"
"""The shard-key field of ``resources``, ``history`` and journal entry documents."""
SHARED = "~shared"
"""``sk`` of a resource with several residents (sorts after every ``Type/id``)."""
IDS = "ids"
"""``{_id: "Type/id", sk}``: global uniqueness of resource ids on a cluster (module docstring)."""
RESIDENT = "Patient"

HASHED_KEY: dict[str, Any] = {SK: "hashed"}
RANGED_KEY: dict[str, Any] = {SK: 1}
SHARDED = ("resources", "history")
"""Collections sharded by ``sk``; ``ids`` is sharded by ``_id``; ``locks``, ``journal``, ``probe`` and
``kv`` (key-value records: clients, users, token ids; small, and its unique ``_id`` is what makes a
create-only put atomic for every mongos) stay unsharded on the database's primary shard."""

_WHERE = re.compile(r"\.where\((?:[^()]|\([^()]*\))*\)")


def _paths(expression: str | None) -> frozenset[str]:
    """The element paths of a FHIRPath union, without ``.where(…)`` filters."""
    if not expression:
        return frozenset()
    return frozenset(_WHERE.sub("", branch).strip() for branch in expression.split("|"))


@cache
def _registry() -> SearchRegistry:
    return SearchRegistry()


@cache
def resident_params(type_: str) -> frozenset[str]:
    """Reference parameters of ``type_`` whose ``Patient`` targets are the resource's residents."""
    comp = compartment(_registry().definitions, RESIDENT)
    assert comp is not None
    members = tuple(p for p in comp.members.get(type_, ()) if p != OWNER)
    if not members:
        return frozenset()
    registry = _registry()
    inside: set[str] = set()
    for code in members:
        found = registry.get(type_, code)
        if found is not None:
            inside |= _paths(found.expression)
    aliases = {code for code, d in registry.for_type(type_).items()
               if d.type == "reference" and _paths(d.expression) and _paths(d.expression) <= inside}
    return frozenset(members) | frozenset(aliases)


def residents(type_: str, id_: str, entries: Iterable[Entry]) -> set[str]:
    """``Patient/…`` keys of the residents of a resource (module docstring)."""
    found = {f"{RESIDENT}/{id_}"} if type_ == RESIDENT else set()
    params = resident_params(type_)
    for e in entries:
        if e.table != "reference" or e.param not in params:
            continue
        ref = dict(zip(TABLES["reference"], e.values, strict=True))
        if ref.get("ref_type") == RESIDENT and ref.get("ref_id"):
            found.add(f"{RESIDENT}/{ref['ref_id']}")
    return found


def shard_key(type_: str, id_: str, entries: Iterable[Entry]) -> str:
    """``sk`` of a resource version with these search entries (module docstring)."""
    found = residents(type_, id_, entries)
    if len(found) == 1:
        return next(iter(found))
    return SHARED if found else f"{type_}/{id_}"


def stored_shard_key(doc: Mapping[str, Any]) -> str:
    """``sk`` of a stored current document from its ``reference`` array (the entries it was written
    with), for documents written before ``sk`` existed (``yidang mongo setup`` fills them in)."""
    entries = [Entry("reference", str(r.get("p")), tuple(r.get(f) for f in TABLES["reference"]))
               for r in doc.get("reference") or () if isinstance(r, Mapping)]
    return shard_key(str(doc["type"]), str(doc["id"]), entries)


# --- routing ----------------------------------------------------------------------------------


def _choices(tests: Sequence[FieldTest], field: str) -> set[str] | None:
    """The values eq/in tests allow for ``field`` (None: not constrained to a finite set)."""
    allowed: set[str] | None = None
    for t in tests:
        if t.field != field or t.op not in ("eq", "in"):
            continue
        values = {t.value} if t.op == "eq" else set(t.value) if isinstance(t.value, tuple | list | frozenset | set) \
            else None
        if values is None:
            return None
        got = {str(v) for v in values}
        allowed = got if allowed is None else allowed & got
    return allowed


def residents_named(cond: Condition, types: Sequence[str]) -> frozenset[str] | None:
    """A set S of ``Patient/…`` keys such that every resource of ``types`` matching ``cond`` has a
    resident in S; None when ``cond`` names no resident (the search is scatter-gather)."""
    match cond:
        case Match(table="reference", param=param, tests=tests):
            if not types or any(param not in resident_params(t) for t in types):
                return None
            kinds, ids = _choices(tests, "ref_type"), _choices(tests, "ref_id")
            if kinds != {RESIDENT} or ids is None:
                return None
            return frozenset(f"{RESIDENT}/{i}" for i in ids)
        case ResourceTest(field="id", op="eq" | "in") if tuple(types) == (RESIDENT,):
            ids = _choices((FieldTest("id", cond.op, cond.value),), "id")
            return None if ids is None else frozenset(f"{RESIDENT}/{i}" for i in ids)
        case And(items=items):
            narrowed = types
            for item in items:
                if isinstance(item, ResourceTest) and item.field == "type" and item.op in ("eq", "in"):
                    kinds = _choices((FieldTest("type", item.op, item.value),), "type") or set()
                    narrowed = tuple(t for t in narrowed if t in kinds) if narrowed else tuple(sorted(kinds))
            found = [s for s in (residents_named(i, narrowed) for i in items) if s is not None]
            if not found:
                return None
            return frozenset.intersection(*found)
        case Or(items=items):
            union: set[str] = set()
            for item in items:
                branch = residents_named(item, types)
                if branch is None:
                    return None
                union |= branch
            return frozenset(union)
    return None


def shard_values(named: Iterable[str]) -> list[str]:
    """The ``sk`` values a query naming these residents reaches: theirs and the shared one."""
    return sorted({*named, SHARED})


def route(types: Sequence[str], cond: Condition, base: Filter) -> Filter:
    """``base`` (the full filter of a search of ``types`` by ``cond``) with the ``sk`` conjunct when
    ``cond`` names residents; unchanged otherwise."""
    named = residents_named(cond, types)
    if named is None:
        return base
    return conjoin(base, {SK: {"$in": shard_values(named)}})


def shard_targets(f: Filter) -> frozenset[str] | None:
    """The ``sk`` values a compiled filter restricts its matches to, as mongos reads it (an equality
    or ``$in`` on ``sk``, at the top, in a conjunct of ``$and``, or in every branch of ``$or``);
    None: the query goes to every shard."""
    found: frozenset[str] | None = None
    cond = f.get(SK)
    if isinstance(cond, Mapping) and "$eq" in cond:
        found = frozenset([cond["$eq"]])
    elif isinstance(cond, Mapping) and isinstance(cond.get("$in"), list):
        found = frozenset(cond["$in"])
    elif isinstance(cond, str):
        found = frozenset([cond])
    for part in f.get("$and", ()):
        inner = shard_targets(part)
        if inner is not None:
            found = inner if found is None else found & inner
    branches = f.get("$or")
    if branches:
        each = [shard_targets(b) for b in branches]
        if all(s is not None for s in each):
            union = frozenset().union(*(s for s in each if s is not None))
            found = union if found is None else found & union
    return found


# --- cluster indexes and zones ----------------------------------------------------------------


def non_unique(model: IndexModel) -> IndexModel:
    """``model`` without ``unique`` (a cluster cannot enforce it unless prefixed by the shard key)."""
    doc = dict(model.document)
    keys = list(doc.pop("key").items())
    doc.pop("unique", None)
    return IndexModel(keys, **doc)


def cluster_indexes(models: Sequence[IndexModel]) -> list[IndexModel]:
    return [non_unique(m) if m.document.get("unique") else m for m in models]


DISTRICT = re.compile(r"^(?:\d{2}|\d{4}|\d{6})$")
"""A GB/T 2260 code or prefix: province (2 digits), prefecture (4) or county-level district (6)."""


class ZoneError(ValueError):
    """A zones file that cannot be applied (the message says where)."""


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    shards: tuple[str, ...]
    districts: tuple[str, ...]


def parse_zones(text: str) -> list[Zone]:
    """A zones file: JSON ``{"<zone>": {"shards": ["shard1"], "districts": ["110101", "1102"]}}``."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ZoneError(f"zones file is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ZoneError("zones file must be a non-empty JSON object of zone name -> {shards, districts}")
    zones: list[Zone] = []
    owner: dict[str, str] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ZoneError(f"zone {name!r}: expected an object with 'shards' and 'districts'")
        shards, districts = spec.get("shards"), spec.get("districts")
        if not isinstance(shards, list) or not shards or not all(isinstance(s, str) and s for s in shards):
            raise ZoneError(f"zone {name!r}: 'shards' must be a non-empty list of shard names")
        if not isinstance(districts, list) or not districts:
            raise ZoneError(f"zone {name!r}: 'districts' must be a non-empty list of GB/T 2260 codes")
        for code in districts:
            if not isinstance(code, str) or not DISTRICT.match(code):
                raise ZoneError(f"zone {name!r}: {code!r} is not a GB/T 2260 code (2, 4 or 6 digits)")
            for other, zone in owner.items():
                if code.startswith(other) or other.startswith(code):
                    raise ZoneError(f"zone {name!r}: district {code} overlaps {other} of zone {zone!r}")
            owner[code] = name
        zones.append(Zone(name, tuple(shards), tuple(districts)))
    return zones


def zone_ranges(zone: Zone) -> list[tuple[str, str]]:
    """``[min, max)`` ranges of ``sk`` for the residents whose ids start with the zone's codes."""
    out = []
    for code in sorted(zone.districts):
        low = f"{RESIDENT}/{code}"
        high = successor(low)
        assert high is not None
        out.append((low, high))
    return out
