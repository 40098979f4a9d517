"""Result parameters (search.html#return): ``_sort``, ``_count``, ``_include``/``_revinclude``,
``_summary``, ``_elements``, ``_total``, ``_contained``/``_containedType`` and the ``_cursor``
keyset page token. They shape what is returned, never which resources match, which is why
conditional interactions reject them (:func:`server.search.parse.parse_criteria`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from server.search.model import Query, SortKey
from server.search.order import SORT_FIELDS
from server.search.registry import ParamDef, SearchRegistry
from server.search.types.common import invalid

RESULT_PARAMS = frozenset({
    "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
    "_containedType", "_cursor",
})
SUMMARY_VALUES = frozenset({"true", "false", "text", "data", "count"})
TOTAL_VALUES = frozenset({"none", "estimate", "accurate"})
_ELEMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\[x\])?(\.[A-Za-z][A-Za-z0-9_]*(\[x\])?)*$")


@dataclass(frozen=True, slots=True)
class Include:
    """One ``_include``/``_revinclude``: resources ``source_type`` point at through ``param``
    (``*`` for every reference parameter), optionally only of ``target_type``."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False
    reverse: bool = False


def count(raw: str, max_count: int) -> int:
    if not raw.isdigit():
        invalid("_count", f"'{raw}' is not a non-negative integer")
    return min(int(raw), max_count)


def total(raw: str) -> str:
    if raw not in TOTAL_VALUES:
        invalid("_total", f"'{raw}' is not one of none, estimate, accurate")
    return raw


def summary(raw: str) -> str:
    if raw not in SUMMARY_VALUES:
        invalid("_summary", f"'{raw}' is not one of true, false, text, data, count")
    return raw


def elements(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    for n in names:
        if not _ELEMENT.match(n):
            invalid("_elements", f"'{n}' is not an element name")
    return names


def sort_key(code: str, descending: bool, defs: Sequence[ParamDef]) -> SortKey:
    """The SortKey of one ``_sort`` item; ``defs`` are the parameter's definitions per type."""
    if code == "_id":
        return SortKey("resource", "id", "id", descending)
    if code == "_lastUpdated":
        return SortKey("resource", "last_updated", "last_updated", descending)
    kinds = {d.type for d in defs}
    if len(kinds) != 1 or next(iter(kinds)) not in SORT_FIELDS:
        invalid("_sort", f"cannot sort by '{code}' ({', '.join(sorted(kinds))} parameter)")
    kind = next(iter(kinds))
    field = SORT_FIELDS[kind][1 if descending else 0]
    return SortKey(kind, code, field, descending)  # type: ignore[arg-type]


def include(raw: str, modifier: str | None, reverse: bool, registry: SearchRegistry,
            types: tuple[str, ...]) -> Include:
    """Parse ``Type:param[:target]`` or ``*`` (search.html#include)."""
    name = "_revinclude" if reverse else "_include"
    if modifier not in (None, "iterate", "recurse"):
        invalid(name, f"modifier ':{modifier}' is not supported (use :iterate)")
    iterate = modifier is not None
    if raw == "*":
        return Include("*", "*", None, iterate, reverse)
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        invalid(name, f"'{raw}' is not [type]:[parameter] or [type]:[parameter]:[target type]")
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not registry.is_resource_type(source):
        invalid(name, f"'{source}' is not a resource type")
    if target is not None and not registry.is_resource_type(target):
        invalid(name, f"'{target}' is not a resource type")
    if code != "*":
        param = registry.get(source, code)
        if param is None or param.type != "reference":
            invalid(name, f"'{code}' is not a reference parameter of {source}")
        if target is not None and param.targets and target not in param.targets:
            invalid(name, f"'{target}' is not a target of {source}:{code}")
    if not reverse and not iterate and types and source not in types:
        invalid(name, f"'{source}' is not a type being searched ({', '.join(types)}); use :iterate")
    return Include(source, code, target, iterate, reverse)


def _fingerprint(query: Query) -> str:
    """What a cursor's values depend on: the searched types and the sort (not the criteria, whose
    lowering may depend on the time, e.g. ``ap``)."""
    shape = orjson.dumps([list(query.types), [[k.table, k.param, k.field, k.descending] for k in query.sort]])
    return "c1:" + hashlib.sha256(shape).hexdigest()[:12]


def encode_cursor(values: Sequence[object], query: Query) -> str:
    """The opaque ``_cursor`` token for a keyset position of ``query`` (base64url of a JSON array:
    a fingerprint of the query's types and sort, then the values)."""
    return base64.urlsafe_b64encode(orjson.dumps([_fingerprint(query), *values])).rstrip(b"=").decode()


def decode_cursor(raw: str) -> tuple[object, ...]:
    """The items of a ``_cursor`` token (fingerprint first); checked against the query by
    :func:`cursor_after`."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        invalid("_cursor", "not a cursor this server issued")
    if not isinstance(data, list) or not data:
        invalid("_cursor", "not a cursor this server issued")
    return tuple(data)


def cursor_after(items: tuple[object, ...], query: Query) -> tuple[object, ...]:
    """The keyset values of a decoded cursor, when it was issued for a search with ``query``'s
    types and sort (400 otherwise: a cursor of another search would page through the wrong order)."""
    if items[0] != _fingerprint(query):
        invalid("_cursor", "the paging cursor belongs to a search with other types or _sort; follow the Bundle's links")
    return items[1:]
