"""Helpers every parameter-type module shares: options, value escaping, text normalisation, errors.

Search values use ``\\`` to escape the separators ``,`` ``|`` ``$`` and ``\\`` itself
(http://hl7.org/fhir/R4/search.html#escaping): a type module receives one comma-separated
alternative with its escapes intact, splits it at unescaped ``|`` or ``$`` with
:func:`split_escaped`, and only then unescapes each part.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn, Protocol

from server.errors import InvalidSearch, NotSupported
from server.search.registry import ParamDef


@dataclass(frozen=True, slots=True)
class Options:
    """What lowering and indexing need beyond the parameter and the value."""

    base_url: str = ""
    """This server's base (``https://host/fhir``): absolute references under it count as local."""
    now: int | None = None
    """Microseconds since the epoch used by the ``ap`` prefix (None: the current time)."""
    codes: CodeSource | None = None
    """Terminology for token ``:in``/``:not-in``/``:above``/``:below`` (None: those are declined)."""


class CodeSource(Protocol):
    """What token search needs from a terminology service (kept abstract: the search core does no I/O
    and imports no service)."""

    def value_set_codes(self, url: str) -> list[tuple[str | None, str]] | None:
        """(system, code) of every code in the value set; None when the value set is unknown.
        Raises ``server.errors.NotSupported`` when it is too large to search by."""

    def related_codes(self, system: str, code: str, direction: str) -> set[str] | None:
        """The code with its descendants (``below``) or ancestors (``above``); None when the code
        system defines no hierarchy the server knows."""


DEFAULT = Options()

TABLE_OF: dict[str, str] = {
    "token": "token", "string": "string", "date": "date", "number": "number", "quantity": "quantity",
    "reference": "reference", "uri": "uri", "composite": "composite",
}
"""The index table each parameter type stores its entries in (``special`` has none)."""


def split_escaped(raw: str, sep: str) -> list[str]:
    """Split at unescaped ``sep`` and keep escapes, e.g. ``a\\|b|c`` -> [``a\\|b``, ``c``]."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            current.append(raw[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(raw: str) -> str:
    """Remove search escapes: ``\\,`` ``\\|`` ``\\$`` ``\\\\`` -> the character itself."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in ",|$\\":
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Case- and accent-insensitive form for string search (search.html#string): NFKD, combining
    marks dropped, casefolded. Full-width Latin letters fold to ASCII; CJK text is unchanged.
    Cached: displays and names repeat across resources, and this runs for each at every write."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def invalid(param: ParamDef | str, message: str) -> NoReturn:
    """Raise InvalidSearch naming the parameter (as OperationOutcome.issue.expression too)."""
    name = param.code if isinstance(param, ParamDef) else param
    raise InvalidSearch(f"Search parameter '{name}': {message}", expression=(name,))


def unsupported_modifier(param: ParamDef, modifier: str) -> NoReturn:
    """Reject a modifier the parameter's type does not define (search.html#modifiers)."""
    invalid(param, f"modifier ':{modifier}' is not supported for {param.type} parameters")


def not_supported(param: ParamDef | str, message: str) -> NoReturn:
    name = param.code if isinstance(param, ParamDef) else param
    raise NotSupported(f"Search parameter '{name}': {message}", expression=(name,))
