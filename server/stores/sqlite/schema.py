"""Schema of the embedded store (``<data-dir>/yidang.db``).

- ``resources``: one row per resource: ``rid`` (integer key the index tables point at), type, id,
  current version, ``lu`` (last updated, µs), ``deleted``.
- ``versions``: every version (current one included) with its JSON body; reads and history are
  primary-key lookups here, so bodies are stored once.
- ``idx_<table>``: search entries of the current version, one row per ``model.Entry``; ``param``
  is qualified by type (``Observation.code``) so an index probe is selective per resource type.
  Each has a covering index that starts with ``param`` and ends with ``rid`` plus an index on
  ``rid`` for replacing a resource's entries.
- ``idx_date`` also holds *hull* rows (:data:`HULL`) and a partial index of values longer than a
  day, for two-sided date ranges.
- ``kv``: the key-value records of :mod:`server.stores.kv` (clients, users, token ids …):
  ``value`` is the record's orjson bytes, ``expires`` µs since 1970 or NULL; ``kv_expires`` (partial,
  only rows that expire) lets each write remove a bounded batch of expired rows cheaply.
- ``_sort`` by a parameter reads the smallest (largest, descending) value of that parameter's
  entries through the ``rid`` index: no sort table to maintain on every write.

The database runs in WAL mode with ``synchronous=NORMAL``: readers never wait for the writer, and a
commit is durable once the WAL is checkpointed (a power cut can lose the last transactions, never
corrupt the file). Writes are serialised by ``BEGIN IMMEDIATE``, across processes too.
"""

from __future__ import annotations

from server.search.model import TABLES

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-131072",
    "PRAGMA mmap_size=1073741824",
    "PRAGMA busy_timeout=0",
)

SCHEMA_VERSION = 1

HULL = "|hull"
"""Suffix of the ``idx_date`` rows holding, for a date parameter with several values in one
resource, their hull [smallest lo, largest hi]: what a two-sided range over two parameters
(``date=ge…&date=lt…``) is driven by (see :mod:`.compile`). Searches never name these params."""
SHORT_DATE_US = 86_400_000_000
"""Date values at most one day long are found by a bounded range on ``lo``; longer ones (periods,
partial dates) through the partial index ``idx_date_long``."""

INDEX_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "token": (("code", "system"),),
    "string": (("value",),),
    "date": (("lo", "hi"), ("hi",)),
    "number": (("lo", "hi"),),
    "quantity": (("lo", "hi"), ("code", "lo")),
    "reference": (("ref_id", "ref_type"), ("url",)),
    "uri": (("value",),),
    "composite": (("key",),),
}
"""Probe columns after ``param`` for each table's covering indexes (``rid`` is appended).

Every extra index costs each write; a query testing only a later column (``system|`` tokens,
``:exact`` strings, which the parser pairs with the normalised value) still probes by ``param``."""


def ddl() -> list[str]:
    statements = [
        """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS resources (
            rid INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            lu INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            UNIQUE (type, id))""",
        "CREATE INDEX IF NOT EXISTS resources_type_lu ON resources (type, lu)",
        """CREATE TABLE IF NOT EXISTS versions (
            type TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            lu INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            method TEXT NOT NULL,
            body BLOB,
            PRIMARY KEY (type, id, version))""",
        "CREATE INDEX IF NOT EXISTS versions_lu ON versions (lu)",
        "CREATE INDEX IF NOT EXISTS versions_type_lu ON versions (type, lu)",
        # added after the first release: CREATE … IF NOT EXISTS upgrades existing data directories
        """CREATE TABLE IF NOT EXISTS kv (
            space TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            expires INTEGER,
            PRIMARY KEY (space, key))""",
        "CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL",
    ]
    for table, fields in TABLES.items():
        cols = ", ".join(fields)
        statements.append(f"CREATE TABLE IF NOT EXISTS idx_{table} (rid INTEGER NOT NULL, param TEXT NOT NULL, {cols})")
        statements.append(f"CREATE INDEX IF NOT EXISTS idx_{table}_rid ON idx_{table} (rid)")
        for n, probe in enumerate(INDEX_COLUMNS[table]):
            statements.append(
                f"CREATE INDEX IF NOT EXISTS idx_{table}_q{n} ON idx_{table} (param, {', '.join(probe)}, rid)"
            )
    statements.append(
        f"CREATE INDEX IF NOT EXISTS idx_date_long ON idx_date (param, lo, hi, rid) WHERE hi - lo > {SHORT_DATE_US}"
    )
    return statements
