"""The terminology service seen through the search core's ``CodeSource`` protocol, for token
``:in``, ``:not-in``, ``:above`` and ``:below`` (http://hl7.org/fhir/R4/search.html#token)."""

from __future__ import annotations

from typing import Any

from server.errors import NotSupported
from terminology import TerminologyError, TooCostly, UnknownResource

MAX_CODES = 10_000
"""A value set larger than this is refused for search (each code becomes part of the query)."""


class TerminologyCodes:
    def __init__(self, terminology: Any) -> None:
        self.terminology = terminology

    def value_set_codes(self, url: str) -> list[tuple[str | None, str]] | None:
        try:
            expanded = self.terminology.expand(url=url, count=MAX_CODES + 1)
        except UnknownResource:
            return None
        except TooCostly:
            raise NotSupported(f"value set '{url}' is too large to search by (more than {MAX_CODES} codes)") from None
        except TerminologyError as exc:
            raise NotSupported(f"value set '{url}' cannot be expanded here: {exc}") from None
        contains = expanded.get("expansion", {}).get("contains", [])
        if len(contains) > MAX_CODES:
            raise NotSupported(f"value set '{url}' is too large to search by (more than {MAX_CODES} codes)")
        return [(c.get("system"), c["code"]) for c in contains if "code" in c]

    def related_codes(self, system: str, code: str, direction: str) -> set[str] | None:
        found = (self.terminology.descendants if direction == "below" else self.terminology.ancestors)(system, code)
        return None if found is None else {code, *found}
