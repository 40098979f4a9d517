"""Reference parameters (search.html#reference): local ``Type/id`` targets, absolute and canonical URLs.

Stored shape ``(ref_type, ref_id, url)``:

- ``Patient/123`` and ``Patient/123/_history/2`` -> ``("Patient", "123", None)``; an absolute URL
  under this server's base (``Options.base_url``) is the same local reference;
- a bare id takes its type from ``Reference.type`` or the parameter's single target;
- any other absolute URL, ``urn:uuid:``/``urn:oid:`` -> ``(None, None, url)``; a canonical
  ``url|version`` is stored both with and without its version, so either form finds it;
- ``#contained`` references are recorded as the url ``#id``: the contained resource is not a
  resource on this server, so neither chaining nor ``Type/id`` search reaches it, but the element
  is not ``:missing`` either (documented choice; searching for ``#id`` is rejected);
- ``Reference.identifier`` becomes a token entry under ``<code>:identifier`` (for ``:identifier``);
- a resource placed inline (``Bundle.entry[0].resource`` for ``Bundle?composition``) is indexed
  as a reference to its own type and id.

Searches: ``id``, ``Type/id``, ``:Type`` + ``id``, absolute URLs (local when under the base),
canonicals (``url`` or ``url|version``), ``:identifier``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry, FieldTest, Match
from server.search.registry import ParamDef
from server.search.types import token
from server.search.types.common import DEFAULT, Options, invalid, unescape, unsupported_modifier

IDENTIFIER = ":identifier"
_LOCAL = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Ref = tuple[str | None, str | None, str | None]


def parse_reference(text: str, options: Options = DEFAULT) -> Ref | None:
    """(ref_type, ref_id, url) of a reference string (None if empty); ``#id`` stays a url."""
    if not text:
        return None
    base = options.base_url.rstrip("/")
    if base and text.startswith(base + "/"):
        local = _LOCAL.match(text[len(base) + 1:])
        if local:
            return (local.group(1), local.group(2), None)
    local = _LOCAL.match(text)
    if local:
        return (local.group(1), local.group(2), None)
    return (None, None, text)


def references(param: ParamDef, value: Any, fhir_type: str, options: Options = DEFAULT) -> list[Ref]:
    """Stored (ref_type, ref_id, url) forms of one value."""
    if isinstance(value, str):  # canonical / uri elements
        found = parse_reference(value, options)
        if found is None:
            return []
        if found[2] is not None and "|" in found[2]:
            return [found, (None, None, found[2].split("|", 1)[0])]
        return [found]
    if not isinstance(value, dict):
        return []
    if fhir_type not in ("Reference", "canonical") and "resourceType" in value:
        rid = value.get("id")
        return [(value["resourceType"], rid, None)] if isinstance(rid, str) else []
    text = value.get("reference")
    if not isinstance(text, str):
        return []
    if _ID.match(text) and "/" not in text:
        declared = value.get("type")
        if isinstance(declared, str):
            return [(declared, text, None)]
        return [(param.targets[0] if len(param.targets) == 1 else None, text, None)]
    found = parse_reference(text, options)
    return [found] if found else []


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    out = [Entry("reference", param.code, r) for r in references(param, value, fhir_type, options)]
    ident = value.get("identifier") if isinstance(value, dict) and fhir_type == "Reference" else None
    if isinstance(ident, dict):
        out.extend(Entry("token", param.code + IDENTIFIER, t) for t in token.tokens(ident, "Identifier"))
    return out


def tests(param: ParamDef, type_modifier: str | None, raw: str, options: Options = DEFAULT
          ) -> tuple[FieldTest, ...]:
    """Tests on one reference entry for ``raw`` (optionally restricted to ``type_modifier``)."""
    text = unescape(raw)
    if not text:
        invalid(param, "empty reference")
    if "/" not in text and ":" not in text:
        if not _ID.match(text):
            invalid(param, f"'{text}' is not a resource id")
        if type_modifier:
            return (FieldTest("ref_type", "eq", type_modifier), FieldTest("ref_id", "eq", text))
        return (FieldTest("ref_id", "eq", text),)
    found = parse_reference(text, options)
    if found is None or text.startswith("#"):
        invalid(param, f"'{text}' is not a reference this server can search (#contained)")
    if found[2] is not None and ":" not in text:
        invalid(param, f"'{text}' is neither [type]/[id], an id nor an absolute URL")
    ref_type, ref_id, url = found
    if url is not None:
        if type_modifier:
            invalid(param, f"':{type_modifier}' cannot be combined with the URL '{text}'")
        return (FieldTest("url", "eq", url),)
    if type_modifier and type_modifier != ref_type:
        invalid(param, f"'{text}' is not a {type_modifier} reference")
    if param.targets and ref_type not in param.targets and "Resource" not in param.targets:
        invalid(param, f"'{ref_type}' is not a target of this parameter ({', '.join(param.targets)})")
    return (FieldTest("ref_type", "eq", ref_type), FieldTest("ref_id", "eq", ref_id))


def check_type(param: ParamDef, type_name: str, is_resource_type: Any) -> None:
    """A ``:Type`` modifier must name a resource type the parameter can point to."""
    if not is_resource_type(type_name):
        unsupported_modifier(param, type_name)
    if param.targets and type_name not in param.targets and "Resource" not in param.targets:
        invalid(param, f"'{type_name}' is not a target of this parameter ({', '.join(param.targets)})")


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    """``modifier`` is None, ``identifier`` or a resource type name (checked by the caller with
    :func:`check_type`, which knows the type list)."""
    if modifier == "identifier":
        return Match("token", param.code + IDENTIFIER, token.tests(param, raw))
    if modifier is not None and not modifier[:1].isupper():
        unsupported_modifier(param, modifier)
    return Match("reference", param.code, tests(param, modifier, raw, options))
