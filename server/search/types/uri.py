"""URI parameters (search.html#uri): exact match, ``:below`` (prefix) and ``:above``.

Values are stored as written; a canonical ``url|version`` is also stored without the version.
``:above`` finds resources whose URI is the given one or a parent of it: it is lowered to an
``in`` over every prefix ending at a ``/`` boundary (with and without the trailing slash), e.g.
``http://acme.org/fhir/ValueSet/123`` -> ``http://acme.org/fhir/ValueSet``, ``http://acme.org/fhir``,
``http://acme.org`` ... The scheme and authority are never cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry, FieldTest, Match
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, invalid, unescape, unsupported_modifier


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    if not isinstance(value, str) or not value:
        return []
    out = [Entry("uri", param.code, (value,))]
    if "|" in value:
        out.append(Entry("uri", param.code, (value.split("|", 1)[0],)))
    return out


def above(uri: str) -> tuple[str, ...]:
    """The URI and its parents at '/' boundaries, never shorter than ``scheme://authority``."""
    scheme_end = uri.find("://")
    floor = uri.find("/", scheme_end + 3) if scheme_end >= 0 else uri.find("/")
    if floor < 0:
        return (uri,)
    out = [uri]
    cut = uri.rstrip("/")
    while True:
        if cut not in out:
            out.append(cut)
        slash = cut.rfind("/")
        if slash < floor:
            break
        cut = cut[:slash]
        out.append(cut + "/")
    return tuple(dict.fromkeys(out))


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    value = unescape(raw)
    if not value:
        invalid(param, "empty URI")
    if modifier is None:
        return Match("uri", param.code, (FieldTest("value", "eq", value),))
    if modifier == "below":
        return Match("uri", param.code, (FieldTest("value", "prefix", value),))
    if modifier == "above":
        return Match("uri", param.code, (FieldTest("value", "in", above(value)),))
    unsupported_modifier(param, modifier)
