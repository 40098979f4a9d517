"""The MongoDB layout of Yidang: collections, document shapes, indexes. Cited by the README.

Database: the path of the connection URI (``mongodb://host/yidang``), else ``yidang``.

``resources`` — one document per resource (its current version, possibly a deletion)::

    {_id: "Patient/123", type: "Patient", id: "123", version: 3, lu: <int µs since 1970Z>,
     deleted: false, method: "PUT", res: {<the resource as a sub-document>},
     token:     [{p: "identifier", system, code, text}, ...],   # one array per index table,
     string:    [{p, value, exact}],                           # fields exactly as in
     date:      [{p, lo, hi}],                                 # server.search.model.TABLES,
     number:    [{p, lo, hi}],  quantity: [{p, lo, hi, system, code}],   # "p" = parameter code
     reference: [{p, ref_type, ref_id, url}],  uri: [{p, value}],  composite: [{p, key, lo, hi}],
     refs: ["subject|Patient/123", ...],       # param|Type/id of each local reference (chains)
     sort: {birthdate: {min: <lo>, max: <hi>}, ...},      # per parameter, for _sort
     sk: "Patient/123"}                        # the shard key: the resident (see .sharding)

  ``res`` is ``Version.body`` decoded with orjson and re-encoded on read; BSON keeps key order, so
  the JSON read back is byte-identical to ``orjson.dumps(orjson.loads(body))``. A decimal whose
  text a double does not reproduce (``1.50``, ``12345678901234567890.12``, ``1e2``) is stored as
  the double in ``res`` and its text in ``dec: [[<path…>, "1.50"], …]`` (keys and array
  indexes), put back on read: BSON's Decimal128 would normalise ``1e2`` and the nx-27017 test
  server cannot store it at all. ``dec`` is absent when there is none (nearly always). A deleted version
  has ``res: null`` and no entry arrays, ``refs`` or ``sort``. Empty arrays are omitted.
  ``sort[param]`` holds the smallest and largest value of the parameter's first sortable field
  (token → code, string/uri → value, date/number/quantity → lo for min and hi for max,
  reference → "Type/id" or url, composite → key; see :mod:`server.search.order`), written with the
  entries so that ``_sort`` reads one indexable scalar instead of unwinding arrays. ``refs``
  duplicates the local references of ``reference`` as flat strings for servers that cannot answer
  ``$in`` inside ``$elemMatch`` (nx-27017 ignores it; :mod:`.capabilities`): a forward chain needs
  ``∃ entry: p = x ∧ ref_id ∈ ids``, which such a server answers only as a flat ``$in`` on ``refs``;
  on MongoDB (``in_elem_match``) chains are compiled on the ``reference`` entries instead. It is
  written on every server so that a database keeps working when moved between servers or when the
  query forms are forced; its cost is about one index key (``refs_1``) and a few dozen bytes per
  resource write (measured below). ``_has`` and broad-chain walks also read it.

``history`` — every version, the current one and deletions included::

    {_id: "Patient/123/3", rid: "Patient/123", type, id, version, lu, deleted, method, res, sk}

``ids`` — ``{_id: "Patient/123", sk}``: on a sharded cluster, what keeps resource ids unique across
shards (:mod:`.sharding`); written by transactional sessions behind mongos only.

A resource claimed by an in-flight journalled transaction (see :mod:`.journal`) also carries
``pending: <transaction id>``; one the transaction creates is held meanwhile by a *placeholder*
``{_id, type, id, version: 0, lu: 0, deleted: true, method: "DELETE", res: null, pending}``, which
reads treat as absent and searches never match (``deleted``).

``journal`` — the redo log of multi-write sessions without isolated transactions (:mod:`.journal`):
a header ``{_id: <transaction id>, state: "open"|"committed"|"aborting", owner, host, ns, pid,
start, expires: <ms>, n}`` and one entry per resource written ``{_id: "<transaction id> <key>",
txn, key, hist: [<earlier history documents>]?, <the fields of the new current document>}``.

``kv`` — the key-value records of :mod:`server.stores.kv` (clients, users, token ids …):
``{_id: "<space>\\x1f<key>", value: <JSON text>, exp: <µs>, expires_at: <Date>}`` with a TTL
index on ``expires_at`` (see :mod:`.records`).

``locks`` — ``{_id: "lock <key>", owner, expires: <ms>}`` for :meth:`Session.lock`, plus, with
transactions, ``{_id: "guard <key>", n}`` counters bumped inside the transaction (see
:mod:`.session`). ``probe`` — scratch collection used once by ``open()`` to detect transactions.

Consistency. A single-resource write is atomic without transactions: the current document carries
its entries, and the write is a compare-and-set ``replace_one({_id, version: expected})`` (or
``insert_one`` when the resource must not exist; a duplicate ``_id`` means another writer won →
:class:`~server.stores.base.VersionConflict`), followed by the history insert under its unique
``_id``; ``vread`` also answers from ``resources``, so a crash between the two loses no readable
version. A session with several writes is one multi-document transaction when the deployment
offers isolated transactions (a replica set or sharded cluster; detected at ``open()``). On a
standalone ``mongod`` (and nx-27017) each single write stays atomic, and a multi-write session is
a journalled transaction (:mod:`.journal`): its new documents are made durable in ``journal``
before any of them touches ``resources``/``history``, so it is all-or-nothing across crashes.

Indexes are created by ``open()`` (idempotent; :data:`INDEXES`). They are derived from the query
shapes the compiler emits, and ``tests/stores/test_mongo_index_coverage.py`` checks, without a
``mongod``, that every shape of the search test tables (both capability forms, every sort partition,
paging cursors, chain/``_has`` sub-queries, history pages) is served by one of them under MongoDB's
documented planner rules (:mod:`.coverage`), and that removing any index leaves a shape unserved:

* entry indexes — multikey compound indexes led by the parameter code ``p``, then the field a
  search bounds, so an ``$elemMatch`` on ``{p, field…}`` is a bounded scan: token ``{p, code,
  system}``, ``{p, system}`` (``system|``), ``{p, text}`` (``:text``); string ``{p, value}``; date,
  number, quantity ``{p, lo, hi}`` and ``{p, hi}`` (``gt``/``ge``/``sa``/``eb`` bound only the end);
  reference ``{p, ref_id, ref_type}`` (also chains, efficient form) and ``{p, url}``; ``refs``
  (chains, fallback form); uri ``{p, value}``; composite ``{p, key, lo}``.
* row indexes — ``{type, id}`` (unique; the default order type, id and ``_id`` searches),
  ``{type, lu, id}`` and ``{type, lu: -1, id}`` (``_sort=±_lastUpdated`` with its id tie-break,
  ``_lastUpdated`` ranges), and per parameter of :data:`SORT_INDEXED`, partial indexes
  ``{type, sort.<p>.min, id}`` / ``{type, sort.<p>.max: -1, id}`` holding only resources with that
  parameter (the ``$exists`` partition of :mod:`.order` implies them). A sort on two keys with no
  narrowing parameter, or on a parameter not listed, is a blocking sort of the matching resources.
* ``history`` — ``{lu: -1, type: -1, id: -1, version: -1}`` (system history),
  ``{type, lu: -1, id: -1, version: -1}`` (type history), ``{type, id, version}`` (unique; instance
  history: one resource's versions, sorted in memory), ``{rid, version: -1}`` (``_at``).

Write cost, counted on Synthea patient bundles (``python`` over the first three bundles of
tests/data/samples.tar.xz with :func:`.coverage.entries`; ``pytest -s
tests/stores/test_mongo_index_coverage.py -k write_cost`` prints the first): a resource write adds
49–56 index keys (44–51 in ``resources`` including ``_id``, 5 in ``history``), up from 30–34 before
the coverage work. The largest: token ``{p, code, system}`` 6.3, ``{p, system}`` 6.2, ``{p, text}``
4.7, composite 4.7, reference 2.8 + 2.5, quantity 2.5 + 2.5 keys per resource; the partial sort
indexes 6.7 together; ``refs`` 1.0. Every non-partial index holds one key (``null``) even for a
document without the field, so each entry index costs at least one key per write.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import bson
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from server.errors import PayloadTooLarge
from server.fhir.json import dumps, load_with_decimals, restore_decimals
from server.search.model import TABLES, Entry
from server.search.order import SORT_FIELDS, sort_value
from server.stores.base import Version

from .compile import ref_key
from .order import PARAM_NAME
from .records import KV
from .sharding import IDS, SK, cluster_indexes, shard_key

log = logging.getLogger(__name__)

RESOURCES = "resources"
HISTORY = "history"
LOCKS = "locks"
PROBE = "probe"
JOURNAL = "journal"
PENDING = "pending"
"""Field of a ``resources`` document claimed by an in-flight journalled transaction."""

DEFAULT_DATABASE = "yidang"
NAMESPACE_EXISTS = 48

ROW_FIELDS = ("type", "id", "version", "lu", "deleted", "method", "res", "dec")
INDEX_FIELDS = (*TABLES, "refs", "sort")
"""Fields of a current document derived from its entries (:func:`index_fields`)."""
"""What a read needs from a ``resources`` / ``history`` document (projections)."""

def _index(*keys: str) -> IndexModel:
    return IndexModel([(k, ASCENDING) for k in keys])


SORT_INDEXED = ("birthdate", "date", "family", "given", "name", "gender", "status", "subject", "patient",
                "identifier", "code")
"""Parameters whose ``_sort`` is an ordered index scan (a partial index per direction, holding only
the resources that have the parameter: the ``$exists`` partition of :mod:`.order` implies it).
Sorting on another parameter is correct too, but sorts the matching resources in memory: add it
here (one index per direction, one entry per resource having it) when such sorts are common."""


def _sort_index(param: str, bound: str, direction: int) -> IndexModel:
    path = f"sort.{param}.{bound}"
    return IndexModel([("type", ASCENDING), (path, direction), ("id", ASCENDING)],
                      partialFilterExpression={path: {"$exists": True}})


INDEXES: dict[str, list[IndexModel]] = {
    RESOURCES: [
        IndexModel([("type", ASCENDING), ("id", ASCENDING)], unique=True),
        _index("type", "lu", "id"),  # _sort=_lastUpdated, _lastUpdated ranges
        IndexModel([("type", ASCENDING), ("lu", DESCENDING), ("id", ASCENDING)]),  # _sort=-_lastUpdated
        *(_sort_index(p, "min", ASCENDING) for p in SORT_INDEXED),
        *(_sort_index(p, "max", DESCENDING) for p in SORT_INDEXED),
        _index("token.p", "token.code", "token.system"),
        _index("token.p", "token.system"),  # system| (any code)
        _index("token.p", "token.text"),  # :text
        _index("string.p", "string.value"),
        _index("date.p", "date.lo", "date.hi"),
        _index("date.p", "date.hi"),  # gt/ge/sa bound only the end of a value's range
        _index("number.p", "number.lo", "number.hi"),
        _index("number.p", "number.hi"),  # gt/ge/eb, as for dates
        _index("quantity.p", "quantity.lo", "quantity.hi"),
        _index("quantity.p", "quantity.hi"),
        _index("reference.p", "reference.ref_id", "reference.ref_type"),
        _index("reference.p", "reference.url"),
        _index("refs"),
        _index("uri.p", "uri.value"),
        _index("composite.p", "composite.key", "composite.lo"),
        _index(PENDING),
    ],
    HISTORY: [
        IndexModel([("type", ASCENDING), ("id", ASCENDING), ("version", ASCENDING)], unique=True),
        IndexModel([("lu", DESCENDING), ("type", DESCENDING), ("id", DESCENDING), ("version", DESCENDING)]),
        IndexModel([("type", ASCENDING), ("lu", DESCENDING), ("id", DESCENDING), ("version", DESCENDING)]),
        IndexModel([("rid", ASCENDING), ("version", DESCENDING)]),  # _at: the version current at a time
    ],
    JOURNAL: [_index("txn"), _index("state")],
    KV: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],  # TTL: MongoDB removes expired records
}


async def ensure_schema(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the collections (transactions cannot create them on every server) and indexes."""
    existing = set(await db.list_collection_names())
    for name in (RESOURCES, HISTORY, LOCKS, PROBE, JOURNAL, IDS, KV):
        if name not in existing:
            try:
                await db.create_collection(name, check_exists=False)
            except OperationFailure as exc:  # another process created it meanwhile
                if exc.code != NAMESPACE_EXISTS:
                    raise
    cluster = await is_mongos(db)
    for name, models in INDEXES.items():
        if not cluster:
            await db[name].create_indexes(models)
            continue
        try:  # behind mongos unique indexes are not prefixed by the shard key: see .sharding
            await db[name].create_indexes(cluster_indexes(models))
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICTS:
                raise
            log.warning("MongoDB indexes of %s predate the cluster (%s): run `yidang mongo setup --sharded`",
                        name, exc)


INDEX_CONFLICTS = (85, 86)
"""IndexOptionsConflict, IndexKeySpecsConflict: an index of that name or key exists with other options."""


async def is_mongos(db: AsyncDatabase[dict[str, Any]]) -> bool:
    """True when ``db`` is reached through a mongos (a sharded cluster)."""
    try:
        hello = await db.command("hello")
    except OperationFailure:
        return False
    return hello.get("msg") == "isdbgrid"


# --- documents --------------------------------------------------------------------------------


def _sort_value(entry: Mapping[str, Any], table: str, bound: int) -> object:
    if table not in SORT_FIELDS:  # composite: by its key (no _sort reaches it)
        return entry.get("key")
    return sort_value(table, entry, bound == 1)


def _order(v: object) -> tuple[int, Any]:
    return (1, v) if isinstance(v, int | float) else (2, str(v))


def index_fields(entries: Iterable[Entry]) -> dict[str, Any]:
    """The entry arrays, ``refs`` and ``sort`` of a current document (see module docstring)."""
    arrays: dict[str, list[dict[str, Any]]] = {}
    refs: list[str] = []
    lows: dict[str, list[object]] = {}
    highs: dict[str, list[object]] = {}
    first_table: dict[str, str] = {}
    for e in entries:
        doc = {"p": e.param, **dict(zip(TABLES[e.table], e.values, strict=True))}
        arrays.setdefault(e.table, []).append(doc)
        if e.table == "reference" and doc.get("ref_type") and doc.get("ref_id"):
            refs.append(ref_key(e.param, str(doc["ref_type"]), str(doc["ref_id"])))
        if first_table.setdefault(e.param, e.table) != e.table or not PARAM_NAME.match(e.param):
            continue  # a parameter sorts by its first table's values only; keys must be plain names
        lo, hi = _sort_value(doc, e.table, 0), _sort_value(doc, e.table, 1)
        if lo is not None:
            lows.setdefault(e.param, []).append(lo)
        if hi is not None:
            highs.setdefault(e.param, []).append(hi)
    out: dict[str, Any] = dict(arrays)
    if refs:
        out["refs"] = list(dict.fromkeys(refs))
    sort: dict[str, dict[str, object]] = {}
    for param in first_table:
        bounds: dict[str, object] = {}
        if lows.get(param):
            bounds["min"] = min(lows[param], key=_order)
        if highs.get(param):
            bounds["max"] = max(highs[param], key=_order)
        if bounds:
            sort[param] = bounds
    if sort:
        out["sort"] = sort
    return out


def current_document(version: Version, entries: Sequence[Entry]) -> dict[str, Any]:
    doc = history_document(version)
    doc["_id"] = resource_key(version.type, version.id)
    del doc["rid"]
    if not version.deleted:
        doc.update(index_fields(entries))
    doc[SK] = shard_key(version.type, version.id, () if version.deleted else entries)
    return doc


def history_document(version: Version) -> dict[str, Any]:
    body, decimals = (None, []) if version.deleted or version.body is None else load_with_decimals(version.body)
    return {
        "_id": version_key(version.type, version.id, version.version),
        "rid": resource_key(version.type, version.id),
        "type": version.type,
        "id": version.id,
        "version": version.version,
        "lu": version.last_updated,
        "deleted": version.deleted,
        "method": version.method,
        "res": body,
        **({"dec": decimals} if decimals else {}),
    }


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 - 16 * 1024
"""BSON's 16 MiB document limit, less room for what is stamped after the check (``id``,
``meta.versionId``/``lastUpdated``, the envelope fields, a journal entry's own fields)."""


def check_document_size(type_: str, body: bytes, entries: Sequence[Entry]) -> None:
    """413 when the current document of ``body`` with ``entries`` would not fit in BSON."""
    res, decimals = load_with_decimals(body)
    doc = {"res": res, "dec": decimals, **index_fields(entries)}
    size = len(bson.encode(doc))
    if size > MAX_DOCUMENT_BYTES:
        with_entries = " with its search index entries" if entries else ""
        raise PayloadTooLarge(f"The {type_} would take {size} bytes{with_entries} in MongoDB, more than the "
                              f"16 MiB document limit of the store")


def to_version(doc: Mapping[str, Any]) -> Version:
    res = doc.get("res")
    return Version(
        type=doc["type"],
        id=doc["id"],
        version=int(doc["version"]),
        last_updated=int(doc["lu"]),
        deleted=bool(doc["deleted"]),
        method=doc["method"],
        body=None if res is None else dumps(restore_decimals(res, doc["dec"]) if doc.get("dec") else res),
    )


def resource_key(type_: str, id_: str) -> str:
    return f"{type_}/{id_}"


def version_key(type_: str, id_: str, version: int) -> str:
    return f"{type_}/{id_}/{version}"
