"""Resource -> search index entries, for every parameter of its type (pure, no I/O).

Runs at every write, so it only does table look-ups and compiled extractors
(:mod:`server.search.extract`); entries are de-duplicated (a union such as
``Observation.code | Observation.component.code`` can meet the same coding twice).
``_id`` and ``_lastUpdated`` are row fields of the store, not entries; ``_text``, ``_content``
and ``_query`` have no expression and are declined at search time.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from server.search.extract import Extractor, compile_expression, root_item
from server.search.model import Entry
from server.search.registry import ParamDef, SearchRegistry
from server.search.types import MODULES, composite
from server.search.types.common import Options

ROW_FIELDS = frozenset({"_id", "_lastUpdated"})


class Indexer:
    """Computes the entries of a resource; follows run-time changes of the registry."""

    def __init__(self, registry: SearchRegistry, *, base_url: str = "") -> None:
        self.registry = registry
        self.options = Options(base_url=base_url)
        self._plans: dict[str, list[tuple[ParamDef, Extractor]]] = {}
        self._version = -1

    def plan(self, resource_type: str) -> list[tuple[ParamDef, Extractor]]:
        """(parameter, compiled extractor) pairs for a type, rebuilt when the registry changes."""
        if self._version != self.registry.version:
            self._plans = {}
            self._version = self.registry.version
        found = self._plans.get(resource_type)
        if found is None:
            found = [(d, compile_expression(d.expression, resource_type))
                     for code, d in self.registry.for_type(resource_type).items()
                     if d.expression and code not in ROW_FIELDS and d.type != "special"]
            self._plans[resource_type] = found
        return found

    def entries(self, resource: dict[str, Any], only: Collection[str] | None = None) -> list[Entry]:
        """Every entry of ``resource`` (a dict with ``resourceType``); with ``only``, just those of the
        parameters it names (the access policy tests a version against a few)."""
        out: dict[Entry, None] = {}
        options = self.options
        memo: dict[tuple[object, ...], object] = {}
        root = root_item(resource)
        for param, extractor in self.plan(resource["resourceType"]):
            if only is not None and param.code not in only:
                continue
            for value, fhir_type, path in extractor.nodes(resource, root):
                if param.type == "composite":
                    found = composite.index(param, value, fhir_type, path=path, resource=resource, options=options,
                                            memo=memo)
                else:
                    found = MODULES[param.type].index(param, value, fhir_type, path=path, resource=resource,
                                                      options=options)
                for entry in found:
                    out[entry] = None
        return list(out)
