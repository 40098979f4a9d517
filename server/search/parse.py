"""Search query string -> :class:`SearchRequest` (a :class:`~server.search.model.Query` plus result
options). Pure: no store, no I/O; every error names the offending parameter.

Semantics (http://hl7.org/fhir/R4/search.html): a comma inside one value is OR, a repeated
parameter is AND; ``name:modifier``; chains to any depth (``subject:Patient.organization.name``,
``subject.name`` tried on every target type that has ``name``, or-ed); reverse chains
(``_has:Observation:patient:code``, nested, with chains inside); ``:missing`` for every type;
``_id`` and ``_lastUpdated`` test the resource row. Unknown parameters, and the ones this server
declines (``_text``, ``_content``, ``_filter``, ``_list``, ``_query``, ``near``), raise in strict
mode (``Prefer: handling=strict``) and are listed in ``ignored`` otherwise (search.html#errors).
An unsupported modifier or a malformed value is always an error. ``_format``/``_pretty`` belong to
the HTTP layer and are skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from server.errors import NotSupported
from server.search.check import check_cursor
from server.search.explain import PARAMETER as EXPLAIN
from server.search.limits import MAX_SORT_KEYS, check_request, check_values, too_costly
from server.search.model import (
    Always,
    And,
    Chain,
    Condition,
    Has,
    Missing,
    Not,
    Or,
    Query,
    ResourceTest,
    SortKey,
)
from server.search.registry import ParamDef, SearchRegistry
from server.search.results import (
    RESULT_PARAMS,
    Include,
    count,
    cursor_after,
    decode_cursor,
    elements,
    encode_cursor,
    include,
    sort_key,
    summary,
    total,
)
from server.search.types import MODULES, date, reference
from server.search.types.common import TABLE_OF, CodeSource, Options, invalid, split_escaped, unescape

__all__ = ["Include", "SearchRequest", "encode_cursor", "parse_criteria", "parse_search"]

DECLINED = frozenset({"_text", "_content", "_filter", "_list", "_query"})
"""Parameters this server understands but does not offer (no full-text index, no _filter)."""
SILENT = frozenset({"_format", "_pretty"})
"""Owned by the HTTP layer (content negotiation), never reported as unknown."""
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """Everything a search asks for: what to match (``query``) and how to return it."""

    query: Query
    include: tuple[Include, ...] = ()
    revinclude: tuple[Include, ...] = ()
    summary: str | None = None
    elements: tuple[str, ...] = ()
    contained: str = "false"
    contained_type: str = "container"
    ignored: tuple[tuple[str, str], ...] = ()
    """(parameter name, reason) of every parameter left out of the search (lenient mode)."""
    explain: bool = False
    """``__explain=true``: return the store's query plan too (:mod:`server.search.explain`)."""


class _Unknown(Exception):
    """A parameter name that is not defined for the searched type(s)."""


class _Declined(Exception):
    """A parameter this server does not offer (NotSupported in strict mode, ignored otherwise)."""


class _Criteria:
    """Lowers criteria parameters for a registry; recursion handles chains and ``_has``."""

    def __init__(self, registry: SearchRegistry, options: Options) -> None:
        self.registry = registry
        self.options = options

    def defs(self, types: tuple[str, ...], code: str) -> list[ParamDef]:
        found = [self.registry.get(t, code) for t in (types or ("Resource",))]
        if any(d is None for d in found):
            missing = [t for t, d in zip(types or ("Resource",), found, strict=True) if d is None]
            raise _Unknown(f"'{code}' is not a search parameter of {', '.join(missing)}")
        defs = [d for d in found if d is not None]
        if len({d.type for d in defs}) != 1:
            invalid(code, f"has different types across {', '.join(types)}")
        return defs

    def lower(self, types: tuple[str, ...], name: str, value: str) -> Condition:
        """The condition for one ``name=value`` pair against ``types``."""
        if name.startswith("_has:"):
            return self.has(types, name, value)
        head, dot, rest = name.partition(".")
        code, _, modifier_text = head.partition(":")
        modifier = modifier_text or None
        if code in DECLINED:
            raise _Declined(f"'{code}' is not supported by this server")
        if code == "_id" and not dot:
            return self.ids(modifier, value)
        if code == "_lastUpdated" and not dot:
            return self.last_updated(modifier, value)
        defs = self.defs(types, code)
        param = defs[0]
        if param.type == "special":
            raise _Declined(f"'{code}' ({param.type}) is not supported by this server")
        if dot:
            return self.chain(types, defs, modifier, rest, value)
        if modifier == "missing":
            if value not in ("true", "false"):
                invalid(code, f"':missing' takes true or false, not '{value}'")
            missing = Missing(TABLE_OF[param.type], code, value == "true")  # type: ignore[arg-type]
            if param.type != "reference":
                return missing
            # a reference given only by identifier is present too
            by_identifier = Missing("token", code + reference.IDENTIFIER, value == "true")
            return And((missing, by_identifier)) if value == "true" else Or((missing, by_identifier))
        if param.type == "reference" and modifier is not None and modifier[:1].isupper():
            for d in defs:
                reference.check_type(d, modifier, self.registry.is_resource_type)
        alternatives = [v for v in split_escaped(value, ",") if v]
        if not alternatives:
            invalid(code, "empty value")
        module = MODULES[param.type]
        if param.type == "token" and modifier == "not":  # code:not=a,b -> neither a nor b
            inner = [module.condition(param, None, v, self.options) for v in alternatives]
            return Not(inner[0] if len(inner) == 1 else Or(tuple(inner)))
        items = [module.condition(param, modifier, v, self.options) for v in alternatives]
        return items[0] if len(items) == 1 else Or(tuple(items))

    def chain(self, types: tuple[str, ...], defs: list[ParamDef], modifier: str | None, rest: str,
              value: str) -> Condition:
        param = defs[0]
        if param.type != "reference":
            invalid(param.code, f"only reference parameters can be chained ('{param.code}' is {param.type})")
        if modifier is not None:
            for d in defs:
                reference.check_type(d, modifier, self.registry.is_resource_type)
            targets: list[str] = [modifier]
        else:
            targets = sorted({t for d in defs for t in d.targets})
        if not rest:
            invalid(param.code, "empty chain")
        found: list[Condition] = []
        unknown: list[str] = []
        for target in targets:
            try:
                found.append(Chain(param.code, target, self.lower((target,), rest, value)))
            except _Unknown as e:
                unknown.append(str(e))
        if not found:
            raise _Unknown(unknown[0] if unknown else f"'{param.code}' has no target type to chain into")
        return found[0] if len(found) == 1 else Or(tuple(found))

    def has(self, types: tuple[str, ...], name: str, value: str) -> Condition:
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            invalid("_has", f"'{name}' is not _has:[type]:[reference parameter]:[parameter]")
        _, source, code, rest = parts
        if not self.registry.is_resource_type(source):
            invalid("_has", f"'{source}' is not a resource type")
        param = self.registry.get(source, code)
        if param is None or param.type != "reference":
            invalid("_has", f"'{code}' is not a reference parameter of {source}")
        if types and param.targets and "Resource" not in param.targets and not set(types) & set(param.targets):
            invalid("_has", f"{source}:{code} cannot refer to {', '.join(types)}")
        return Has(source, code, self.lower((source,), rest, value))

    def ids(self, modifier: str | None, value: str) -> Condition:
        if modifier is not None:
            invalid("_id", f"modifier ':{modifier}' is not supported")
        ids = tuple(unescape(v) for v in split_escaped(value, ",") if v)
        for i in ids:
            if not _ID.match(i):
                invalid("_id", f"'{i}' is not a resource id")
        if not ids:
            invalid("_id", "empty value")
        return ResourceTest("id", "eq", ids[0]) if len(ids) == 1 else ResourceTest("id", "in", ids)

    def last_updated(self, modifier: str | None, value: str) -> Condition:
        if modifier is not None:
            invalid("_lastUpdated", f"modifier ':{modifier}' is not supported")
        items: list[Condition] = []
        for raw in (v for v in split_escaped(value, ",") if v):
            for alt in date.lower("_lastUpdated", raw, self.options):
                tests = tuple(ResourceTest("last_updated", t.op, t.value) for t in alt)
                items.append(tests[0] if len(tests) == 1 else And(tests))
        if not items:
            invalid("_lastUpdated", "empty value")
        return items[0] if len(items) == 1 else Or(tuple(items))


def _combine(conditions: list[Condition]) -> Condition:
    if not conditions:
        return Always()
    return conditions[0] if len(conditions) == 1 else And(tuple(conditions))


def _skip(name: str, reason: str, strict: bool, ignored: list[tuple[str, str]], declined: bool = False) -> None:
    if strict:
        if declined:
            raise NotSupported(f"Search parameter '{name}': {reason}", expression=(name,))
        invalid(name, reason)
    ignored.append((name, reason))


def parse_search(
    resource_types: tuple[str, ...],
    params: Sequence[tuple[str, str]],
    registry: SearchRegistry,
    *,
    strict: bool = False,
    default_count: int = 20,
    max_count: int = 1000,
    base_url: str = "",
    codes: CodeSource | None = None,
) -> SearchRequest:
    """Parse a search. ``resource_types`` is empty for a system search (``_type`` may name
    types then); ``params`` are decoded (name, value) pairs in request order."""
    check_request(params)
    criteria = _Criteria(registry, Options(base_url=base_url, codes=codes))
    ignored: list[tuple[str, str]] = []
    values_total = 0
    types = resource_types
    for name, value in params:
        if name == "_type":
            if resource_types:
                _skip(name, "only allowed in a system search", strict, ignored)
                continue
            listed = tuple(dict.fromkeys(t for t in value.split(",") if t))
            if not listed:
                invalid("_type", "empty value (name one or more resource types)")
            for t in listed:
                if not registry.is_resource_type(t):
                    invalid("_type", f"'{t}' is not a resource type")
            types = tuple(dict.fromkeys(types + listed))
    conditions: list[Condition] = []
    includes: list[Include] = []
    revincludes: list[Include] = []
    sort: list[SortKey] = []
    page_size = default_count
    total_mode = "none"
    cursor: tuple[object, ...] | None = None
    summary_value: str | None = None
    element_names: tuple[str, ...] = ()
    contained, contained_type = "false", "container"
    explain = False
    for name, value in params:
        base, _, modifier = name.partition(":")
        if name in SILENT or name == "_type":
            continue
        if name == EXPLAIN:
            if value not in ("true", "false"):
                invalid(name, f"'{value}' is not true or false")
            explain = value == "true"
            continue
        if base in RESULT_PARAMS:
            if modifier and base not in ("_include", "_revinclude"):
                invalid(base, f"modifier ':{modifier}' is not supported")
            if base == "_count":
                page_size = count(value, max_count)
            elif base == "_total":
                total_mode = total(value)
            elif base == "_summary":
                summary_value = summary(value)
            elif base == "_elements":
                element_names = elements(value)
            elif base == "_cursor":
                cursor = decode_cursor(value)
            elif base == "_revinclude" and value == "*":
                _skip(name, "'*' would follow every reference of every type to the matches; name the type "
                            "(e.g. Observation:*)", strict, ignored, True)
            elif base in ("_include", "_revinclude"):
                target = revincludes if base == "_revinclude" else includes
                target.append(include(value, modifier or None, base == "_revinclude", registry, types))
            elif base == "_sort":
                for item in (v for v in value.split(",") if v):
                    code = item.lstrip("-")
                    if code in ("_id", "_lastUpdated"):
                        sort.append(sort_key(code, item.startswith("-"), ()))
                        continue
                    try:
                        sort.append(sort_key(code, item.startswith("-"), criteria.defs(types, code)))
                    except _Unknown as e:
                        _skip("_sort", str(e), strict, ignored)
                if sum(k.table != "resource" for k in sort) > MAX_SORT_KEYS:
                    raise too_costly("_sort", f"at most {MAX_SORT_KEYS} parameters to sort by")
            elif base == "_contained":
                if value not in ("false", "true", "both"):
                    invalid(base, f"'{value}' is not one of false, true, both")
                if value != "false":
                    _skip(base, "searching contained resources is not supported", strict, ignored, True)
            elif base == "_containedType":
                if value not in ("container", "contained"):
                    invalid(base, f"'{value}' is not one of container, contained")
                if value != "container":
                    _skip(base, "returning contained resources is not supported", strict, ignored, True)
            continue
        if value == "":
            ignored.append((name, "empty value"))
            continue
        values_total = check_values(name, len(split_escaped(value, ",")), values_total)
        try:
            conditions.append(criteria.lower(types, name, value))
        except _Unknown as e:
            _skip(name, str(e), strict, ignored)
        except _Declined as e:
            _skip(name, str(e), strict, ignored, True)
    query = Query(types=types, where=_combine(conditions), sort=tuple(sort), count=page_size,
                  total=total_mode)  # type: ignore[arg-type]  # checked by results.total
    if cursor is not None:
        query = replace(query, after=cursor_after(cursor, query))
        check_cursor(query)
    return SearchRequest(query, tuple(includes), tuple(revincludes), summary_value, element_names,
                         contained, contained_type, tuple(ignored), explain)


def parse_criteria(resource_type: str, query_string: str, registry: SearchRegistry, *,
                   base_url: str = "", codes: CodeSource | None = None) -> Condition:
    """Criteria of a conditional create/update/delete (``If-None-Exist``, ``Type?criteria``).

    Always strict: ignoring a parameter would widen the match and touch the wrong resource.
    Result parameters (``_sort``, ``_count``, ``_include`` ...) make no sense here and are rejected.
    """
    criteria = _Criteria(registry, Options(base_url=base_url, codes=codes))
    conditions: list[Condition] = []
    pairs = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
    check_request(pairs)
    values_total = 0
    for name, value in pairs:
        base = name.partition(":")[0]
        if base in RESULT_PARAMS or base == "_type":
            invalid(base, "result parameters are not allowed in conditional criteria")
        if name in SILENT:
            continue
        if value == "":
            invalid(name, "empty value in conditional criteria")
        values_total = check_values(name, len(split_escaped(value, ",")), values_total)
        try:
            conditions.append(criteria.lower((resource_type,), name, value))
        except _Unknown as e:
            invalid(name, str(e))
        except _Declined as e:
            raise NotSupported(f"Search parameter '{name}': {e}", expression=(name,)) from None
    return _combine(conditions)
