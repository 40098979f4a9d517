"""Parsing request bodies into FHIR JSON, with errors that say where the problem is; writing it back.

Two things orjson alone does not give, done here once for every path (create, update, transaction,
``$validate``, XML through :func:`check_shape`):

- **Size limits at parse time** (:class:`Limits`, set in :mod:`server.settings`): nesting depth,
  total number of JSON values, array length. They are checked on a *skeleton* of the body (escapes,
  strings and whitespace removed with C-speed ``bytes`` operations), so the common case costs a
  few percent of the parse and no Python-level walk of the tree.
- **Decimal precision** (http://hl7.org/fhir/R4/json.html#primitive): a number whose text does not
  survive float → text (``1.50``, ``1e2``, ``12345678901234567890.12``, integers beyond 64 bits) is
  parsed as :class:`~profiles.numbers.FhirDecimal`, which :func:`dumps` prints as written. Bodies
  whose every number round-trips (nearly all: Synthea bundles do) stay on the orjson fast path;
  only the others are parsed a second time by the standard library with ``parse_float``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from profiles.numbers import MAX_DIGITS, FhirDecimal, decimal_text
from server.errors import BadRequest

__all__ = ["DEFAULT_LIMITS", "Limits", "canonical", "check_shape", "dumps", "load_resource", "load_stored",
           "load_with_decimals", "loads", "restore_decimals"]

INT64 = (-(2**63), 2**63 - 1)

_NOT_SKELETON = bytes(b for b in range(256) if b not in b'{}[],"0123456789.eE+-')
_SEPARATORS = bytes.maketrans(b"{}[],S", b"      ")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"{}[],")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"{}[]")
_INNERMOST = re.compile(rb"\{,*\}|\[,*\]")
_INNERMOST_ARRAY = re.compile(rb"\[,*\]")
_INNERMOST_BRACKETS = re.compile(rb"\{\}|\[\]")
_EMPTY_KEY = re.compile(rb'""[ \t\r\n]*:')


@dataclass(frozen=True, slots=True)
class Limits:
    """How large a parsed body may be; beyond any of these it is a 400 naming the limit.

    ``max_depth`` counts nested objects and arrays (the resource itself is 1). 100 is far above
    real FHIR (resources rarely exceed ~30 levels; a Bundle entry adds 3) and well under what the
    serialisers can write back (orjson stops at 255 levels, the XML writer recurses in Python), so
    anything accepted can also be answered.
    """

    max_depth: int = 100
    max_elements: int = 1_000_000
    max_array_length: int = 100_000


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- parsing requests


def loads(body: bytes, *, what: str = "request body", limits: Limits = DEFAULT_LIMITS) -> Any:
    """The JSON value of a request body, within ``limits``, with decimals kept as written."""
    if not body or not body.strip():
        raise BadRequest(f"The {what} is empty; a FHIR JSON resource was expected")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise _too_deep(what, limits) from None
        raise BadRequest(f"The {what} is not valid JSON: {exc}") from None
    skeleton = _skeleton(body)
    _check_skeleton(skeleton, data, limits, what)
    if b'""' in body and _EMPTY_KEY.search(body):  # also matches a key ending in an escaped quote; the walk tells
        _check_keys(data, what)
    if _exact(skeleton):
        return data
    return _precise(body, FhirDecimal, what)


def load_resource(body: bytes, *, what: str = "request body", limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    data = loads(body, what=what, limits=limits)
    if not isinstance(data, dict):
        raise BadRequest(f"The {what} must be a JSON object holding a FHIR resource")
    if not isinstance(data.get("resourceType"), str):
        raise BadRequest(f"The {what} has no resourceType", expression=("resourceType",))
    return data


def check_shape(data: Any, *, what: str = "request body", limits: Limits = DEFAULT_LIMITS) -> None:
    """The same limits and key rules for JSON that did not come from JSON text (FHIR XML, the
    result of a JSON Patch): one walk of the tree."""
    root = data.get("resourceType") if isinstance(data, dict) else None
    count, longest = 0, 0
    stack: list[tuple[Any, int, str]] = [(data, 1, root if isinstance(root, str) else "")]
    while stack:
        value, level, path = stack.pop()
        count += 1
        if isinstance(value, dict):
            if "" in value:
                raise _empty_key(what, path)
            stack.extend((child, level + 1, f"{path}.{key}" if path else key) for key, child in value.items())
        elif isinstance(value, list):
            longest = max(longest, len(value))
            stack.extend((child, level + 1, f"{path}[{i}]") for i, child in enumerate(value))
        else:
            continue
        if level > limits.max_depth:
            raise _too_deep(what, limits)
    _check_counts(count, longest, limits, what)


# --------------------------------------------------------------------------- stored bodies


def load_stored(body: bytes) -> Any:
    """A body this server wrote (no limits to check): orjson, unless a number needs its text."""
    data = orjson.loads(body)
    if _plain(body, data):
        return data
    return _precise(body, FhirDecimal, "stored resource")


def load_with_decimals(body: bytes) -> tuple[Any, list[list[Any]]]:
    """:func:`load_stored`, and where its FhirDecimals are: ``[*path, text]`` for each (keys and
    array indexes), for a store whose format has no number type that keeps the text."""
    data = orjson.loads(body)
    if _plain(body, data):
        return data, []
    data = _precise(body, FhirDecimal, "stored resource")
    found: list[list[Any]] = []
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, FhirDecimal):
            found.append([*path, value.text])
        elif isinstance(value, dict):
            stack.extend((v, [*path, k]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))
    return data, found


def restore_decimals(data: Any, decimals: list[list[Any]]) -> Any:
    """Put the texts :func:`load_with_decimals` found back into ``data`` (read from such a store)."""
    for *path, text in decimals:
        container = data
        for step in path[:-1]:
            container = container[step]
        container[path[-1]] = FhirDecimal(text)
    return data


def _plain(body: bytes, data: Any) -> bool:
    """Whether orjson's numbers are the body's (the first test: orjson wrote this very body)."""
    return orjson.dumps(data) == body or _exact(_skeleton(body))


def _default(value: Any) -> Any:
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal):
        return orjson.Fragment(decimal_text(value))
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(data: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes of ``data``; decimals are written as they were read."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2 if pretty else 0)


def canonical(data: Any) -> bytes:
    """JSON with sorted keys, for comparing content: ``1.50`` and ``1.5`` differ, key order does not."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- the skeleton


def _unescaped(body: bytes) -> bytes:
    """``body`` with ``\\\\`` and ``\\"`` replaced by two dots, so every ``"`` left delimits a
    string (JSON escapes are read left to right, as ``bytes.replace`` scans)."""
    if b"\\\\" in body:
        body = body.replace(b"\\\\", b"..")
    if b'\\"' in body:
        body = body.replace(b'\\"', b"..")
    return body


def _skeleton(body: bytes) -> bytes:
    """The body with each string replaced by ``S`` and everything but structure and number
    characters dropped (whitespace, ``:``, the letters of ``true``/``null``): ``{SS,S[1,2.50]}``.
    Three C-speed passes (translate, split, join); no Python loop over the text."""
    parts = _unescaped(body).translate(None, _NOT_SKELETON).split(b'"')
    return b"S".join(parts[::2])


def _check_skeleton(skeleton: bytes, data: Any, limits: Limits, what: str) -> None:
    opens = skeleton.count(b"{") + skeleton.count(b"[")
    commas = skeleton.count(b",")
    # every value but the first follows a comma or opens a container: at most this many values
    # (``[]`` and ``[null]`` look alike here, so when the bound is over the limit, count exactly)
    if 1 + commas + opens > limits.max_elements:
        check_shape(data, what=what, limits=limits)
        return
    if opens <= limits.max_depth and commas < limits.max_array_length:
        return
    if commas >= limits.max_array_length:
        _check_arrays(skeleton.translate(None, _NOT_STRUCTURE), limits, what)
    brackets = skeleton.translate(None, _NOT_BRACKET)
    depth = 0
    while brackets:  # each round removes the innermost containers: as many rounds as levels
        depth += 1
        if depth > limits.max_depth:
            raise _too_deep(what, limits)
        reduced = _INNERMOST_BRACKETS.sub(b"", brackets)  # one pass: "[{}]" loses "{}" only
        if len(reduced) == len(brackets):  # not JSON (orjson has already refused it)
            break
        brackets = reduced


def _check_arrays(structure: bytes, limits: Limits, what: str) -> None:
    """The longest array, from a skeleton of only ``{}[],``: an innermost array ``[,,]`` holds
    one item more than it has commas; removing the innermost containers exposes the next ones."""
    while structure:
        longest = max((len(m) - 1 for m in _INNERMOST_ARRAY.findall(structure)), default=0)
        _check_counts(0, longest, limits, what)
        reduced = _INNERMOST.sub(b"", structure)
        if len(reduced) == len(structure):
            break
        structure = reduced


def _check_counts(count: int, longest: int, limits: Limits, what: str) -> None:
    if count > limits.max_elements:
        raise BadRequest(f"The {what} has more than {limits.max_elements} JSON values "
                         f"(the limit max_elements, YIDANG_MAX_ELEMENTS)")
    if longest > limits.max_array_length:
        raise BadRequest(f"The {what} has an array of more than {limits.max_array_length} items "
                         f"(the limit max_array_length, YIDANG_MAX_ARRAY_LENGTH)")


def _too_deep(what: str, limits: Limits) -> BadRequest:
    return BadRequest(f"The {what} nests objects and arrays more than {limits.max_depth} levels deep "
                      f"(the limit max_depth, YIDANG_MAX_DEPTH)")


def _empty_key(what: str, path: str) -> BadRequest:
    where = f" in {path}" if path else ""
    return BadRequest(f'The {what} has a property with an empty name (""){where}; FHIR JSON property names '
                      "are element names", expression=(path,) if path else ())


def _check_keys(data: Any, what: str) -> None:
    check_shape(data, what=what, limits=Limits(max_depth=2**31, max_elements=2**62, max_array_length=2**62))


# --------------------------------------------------------------------------- numbers


def _exact(skeleton: bytes) -> bool:
    """Whether every number of the body is reproduced by orjson's float/int (the fast path)."""
    for token in set(skeleton.translate(_SEPARATORS).split()):
        if b"." in token or b"e" in token or b"E" in token:
            if token[0] != 45 and not 48 <= token[0] <= 57:  # true/false leave an "e"
                continue
            if orjson.dumps(float(token)) != token:
                return False
        elif len(token) >= 19 and not INT64[0] <= int(token) <= INT64[1]:
            return False
    return True


class _TooPrecise(ValueError):
    pass


def _precise(body: bytes, decimal: Callable[[str], Any], what: str) -> Any:
    """Parse again, building ``decimal(text)`` for each number whose text a float would lose."""

    def number(text: str) -> Any:
        value = float(text)
        if orjson.dumps(value) == text.encode():
            return value
        return exact(text)

    def integer(text: str) -> Any:
        value = int(text)
        return value if len(text) < 19 or INT64[0] <= value <= INT64[1] else exact(text)

    def exact(text: str) -> Any:
        if len(Decimal(text).as_tuple().digits) > MAX_DIGITS:
            raise _TooPrecise(text)
        return decimal(text)

    try:
        return json.loads(body, parse_float=number, parse_int=integer)
    except _TooPrecise as exc:
        raise BadRequest(f"The {what} has the number {str(exc)[:60]} with more than {MAX_DIGITS} significant "
                         "digits, more than can be stored exactly") from None
