"""One module per search parameter type, each holding both halves of the type's semantics:
``index(param, value, fhir_type, *, path, resource, options) -> Iterable[Entry]`` (write time) and
``condition(param, modifier, raw, options) -> Condition`` (query time, one comma-separated
alternative with its escapes intact). :data:`MODULES` is the table the indexer and the parser
dispatch on (Blaze's SearchParam idea: http://hl7.org/fhir/R4/search.html#ptypes).
"""

from __future__ import annotations

from types import ModuleType

from server.search.types import composite, date, number, quantity, reference, special, string, token, uri

MODULES: dict[str, ModuleType] = {
    "token": token, "string": string, "date": date, "number": number, "quantity": quantity,
    "reference": reference, "uri": uri, "composite": composite, "special": special,
}
"""SearchParameter.type code -> the module implementing it."""
