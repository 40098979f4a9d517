"""Composite parameters (search.html#composite): several values that must hold in one element.

``code-value-quantity=http://loinc.org|8480-6$gt140`` needs a code and a value from the same
Observation (or component), so each selected element is indexed as entries
``(key, lo, hi)``: ``key`` is a JSON array of the discrete components (token, reference, string,
uri), ``lo``/``hi`` carry the numeric ones. A search builds the same key (``eq``, or ``prefix``
when its last component is a string, which keeps string starts-with semantics) and lowers the
numeric part with the usual prefix logic.

Each form a search can take is either indexed or reached by a key prefix: a coding ``(s, c)``
gives ``[c, s]`` (``s|c``; ``[c, ""]`` without a system, for ``|c``) and ``[c, null]`` (``c``);
a quantity gives ``["q", code, system]`` as written (and with its unit text as code when that
differs) and ``["c", code, system]`` in UCUM-canonical form with the range converted; a search
without unit or system matches ``["q", code`` or ``["q"`` as a key prefix (the ``q`` tag keeps
canonical entries, whose numbers are in other units, out). A search may name a system only
together with a code. Numeric fields: one
date/quantity/number component -> its [lo, hi]; two number components (the MolecularSequence
coordinates) -> ``lo`` = first value, ``hi`` = second.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import orjson

from server.errors import InvalidSearch
from server.search.extract import Item, compile_expression
from server.search.model import Condition, Entry, FieldTest
from server.search.registry import Component, ParamDef
from server.search.types import date, number, quantity, reference, string, token
from server.search.types.common import (
    DEFAULT,
    Options,
    invalid,
    normalise,
    not_supported,
    split_escaped,
    unescape,
    unsupported_modifier,
)
from server.search.types.prefix import Alternatives, matches

Part = tuple[object, ...]
Variant = tuple[Part, tuple[object, object] | None]
"""Key parts one component value contributes, and its numeric range (None if discrete)."""

_DISCRETE = frozenset({"token", "reference", "string", "uri"})


_LAYOUTS: dict[int, tuple[ParamDef, list[str | None]]] = {}


def _layout(param: ParamDef) -> list[str | None]:
    """Which numeric fields each component fills: ``"range"`` (lo and hi), ``"lo"``/``"hi"`` for
    a point number, None for discrete components."""
    found = _LAYOUTS.get(id(param))
    if found is None or found[0] is not param:
        found = _LAYOUTS[id(param)] = (param, _compute_layout(param))
    return found[1]


def _compute_layout(param: ParamDef) -> list[str | None]:
    numeric = [i for i, c in enumerate(param.components) if c.param.type not in _DISCRETE]
    out: list[str | None] = [None] * len(param.components)
    if len(numeric) == 1:
        out[numeric[0]] = "range"
    elif len(numeric) == 2 and all(param.components[i].param.type == "number" for i in numeric):
        out[numeric[0]], out[numeric[1]] = "lo", "hi"
    elif numeric:
        not_supported(param, "composite with more than one range component")
    return out


def _variants(component: Component, value: Any, fhir_type: str, options: Options) -> list[Variant]:
    kind = component.param.type
    if kind == "token":
        out: list[Variant] = []
        for system, code, _ in token.tokens(value, fhir_type):
            if code is not None:
                out += [((code, system or ""), None), ((code, None), None)]
        return out
    if kind == "reference":
        out = []
        for ref_type, ref_id, url in reference.references(component.param, value, fhir_type, options):
            if url is not None:
                out.append(((url,), None))
            else:
                out.append(((ref_id,), None))
                if ref_type:
                    out.append(((f"{ref_type}/{ref_id}",), None))
        return out
    if kind == "string":
        return [((normalise(s),), None) for s in string.strings(value, fhir_type)]
    if kind == "uri":
        return [((value,), None)] if isinstance(value, str) and value else []
    if kind == "date":
        return [((), r) for r in date.value_ranges(value, fhir_type)]
    if kind == "number":
        v = number.point(value)
        return [] if v is None else [((), (v, v))]
    if kind == "quantity":
        return [(("c" if q.canonical else "q", q.code or "", q.system or ""), (q.lo, q.hi))
                for q in quantity.values(value, fhir_type)]
    return []


def _key(parts: Iterable[object]) -> str:
    return orjson.dumps(list(parts)).decode()


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT,
          memo: dict[tuple[object, ...], Any] | None = None) -> Iterable[Entry]:
    """Entries of one element the composite selects (``path`` is its type-model node, so the
    component expressions can be compiled relative to it; ``resource`` serves ``%resource``).
    ``memo`` (one dict per resource) shares component results between the composites of a
    resource: Observation's eight composites all read ``code`` from the same elements."""
    if path is None:
        return []
    memo = {} if memo is None else memo
    item: Item = (value, fhir_type, path)
    root = resource if resource is not None else (value if isinstance(value, dict) else {})
    found: list[list[Item]] = []
    for c in param.components:
        key = (c.expression, path, id(value))
        nodes = memo.get(key)
        if nodes is None:
            nodes = memo[key] = compile_expression(c.expression, path).nodes_from(item, root)
        if not nodes:  # most elements lack a component (a Quantity Observation has no valueString)
            return []
        found.append(nodes)
    per_component: list[list[Variant]] = []
    for component, nodes in zip(param.components, found, strict=True):
        variant_key = (component.param.type, component.definition, component.expression, path, id(value))
        variants = memo.get(variant_key)
        if variants is None:
            variants = memo[variant_key] = [
                v for node in nodes for v in _variants(component, node[0], node[1], options)]
        if not variants:
            return []
        per_component.append(variants)
    layout = _layout(param)
    out: dict[tuple[object, ...], Entry] = {}
    for combo in itertools.product(*per_component):
        lo: object = None
        hi: object = None
        for (_, rng), slot in zip(combo, layout, strict=True):
            if rng is None:
                continue
            if slot == "range":
                lo, hi = rng
            elif slot == "lo":
                lo = rng[0]
            elif slot == "hi":
                hi = rng[0]
        values = (_key(p for parts, _ in combo for p in parts), lo, hi)
        out[values] = Entry("composite", param.code, values)
    return list(out.values())


def _query_part(component: Component, slot: str | None, raw: str, options: Options
                ) -> tuple[Part, Alternatives | None, str | None]:
    """Key parts, numeric alternatives and how the key is left open: ``"list"`` when later parts
    may be anything (a quantity without unit or system), ``"string"`` for a starts-with string."""
    kind, sub = component.param.type, component.param
    if kind == "token":
        parts = split_escaped(raw, "|")
        code = unescape(parts[-1])
        if len(parts) > 2 or not code:
            invalid(sub, f"'{raw}' is not [system|]code (a composite token needs a code)")
        return (code, unescape(parts[0]) if len(parts) == 2 else None), None, None
    if kind == "reference":
        got = {t.field: t.value for t in reference.tests(sub, None, raw, options)}
        if "url" in got:
            return (got["url"],), None, None
        return ((f"{got['ref_type']}/{got['ref_id']}" if "ref_type" in got else got["ref_id"]),), None, None
    if kind == "string":
        return (normalise(unescape(raw)),), None, "string"
    if kind == "uri":
        return (unescape(raw),), None, None
    lo, hi = ("lo", "hi") if slot == "range" else (slot or "lo", slot or "hi")
    if kind == "date":
        return (), date.lower(sub, raw, options, lo=lo, hi=hi), None
    if kind == "number":
        return (), number.lower(sub, raw, lo=lo, hi=hi), None
    if kind == "quantity":
        q = quantity.parse(sub, raw, lo=lo, hi=hi)
        if q.code is None and q.system is not None:
            invalid(sub, f"'{raw}': a composite quantity with a system needs a code")
        if q.code is None:
            return ("q",), q.alternatives, "list"
        if q.system is None:
            return ("q", q.code), q.alternatives, "list"
        return ("c" if q.canonical else "q", q.code, q.system), q.alternatives, None
    not_supported(sub, f"{kind} components are not supported in composites")


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier is not None:
        unsupported_modifier(param, modifier)
    values = split_escaped(raw, "$")
    if len(values) != len(param.components):
        invalid(param, f"'{raw}' needs {len(param.components)} '$'-separated values")
    layout = _layout(param)
    key_parts: list[object] = []
    alternatives: Alternatives = ((),)
    open_: str | None = None
    for i, (component, slot, value) in enumerate(zip(param.components, layout, values, strict=True)):
        if not value:
            invalid(param, "empty composite component")
        try:
            parts, alts, open_ = _query_part(component, slot, value, options)
        except InvalidSearch as e:
            invalid(param, f"component {i + 1} ({component.param.code}): {e.message}")
        if open_ is not None and i != len(values) - 1 and any(
                c.param.type in _DISCRETE or c.param.type == "quantity" for c in param.components[i + 1:]):
            not_supported(param, "only the last component of a composite may be left partly open")
        key_parts.extend(parts)
        if alts is not None:
            alternatives = tuple(a + b for a, b in itertools.product(alternatives, alts))
    key = _key(key_parts)
    if open_ == "string":
        key_test = FieldTest("key", "prefix", key[:-2])
    elif open_ == "list":
        key_test = FieldTest("key", "prefix", key[:-1] + ",")
    else:
        key_test = FieldTest("key", "eq", key)
    return matches("composite", param.code, alternatives, (key_test,))
