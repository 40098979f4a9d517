"""The state of one script run: fixtures, responses by id, what the server assigned, variables.

Variables are evaluated when used, not up front, because their ``sourceId`` is often a
``responseId`` that only exists once the operation producing it has run
(http://hl7.org/fhir/R4/testscript.html#variables).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.runner import expressions, paths
from conformance.runner.placeholders import Placeholders
from conformance.runner.results import Exchange
from conformance.runner.script import LoadedScript

ProfileCheck = Callable[[dict[str, Any], str], list[str]]
"""(resource, profile canonical URL) -> error messages; empty when the resource conforms."""

_LOCATION = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?/?$")


class RunError(ValueError):
    """Raised when an action cannot be carried out (unknown fixture, unresolved variable…)."""


@dataclass(frozen=True)
class Target:
    type: str
    id: str
    version: str | None = None


def target_of(exchange: Exchange) -> Target | None:
    """The resource a response is about: its Location / Content-Location, else its body."""
    for header in ("location", "content-location"):
        value = exchange.header(header)
        if value and (match := _LOCATION.search(value.split("?", 1)[0])):
            return Target(*match.groups())
    body = exchange.resource
    if isinstance(body, dict) and body.get("id") and body.get("resourceType") not in ("Bundle", "OperationOutcome"):
        return Target(body["resourceType"], body["id"], (body.get("meta") or {}).get("versionId"))
    return None


@dataclass
class RunContext:
    client: httpx.AsyncClient
    base_url: str
    script: LoadedScript
    fixtures: dict[str, Any]
    user_variables: Mapping[str, str]
    placeholders: Placeholders
    destinations: Mapping[int, str] = field(default_factory=dict)
    default_format: str = "json"
    validator: ProfileCheck | None = None
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    """By ``responseId`` and ``requestId``."""
    assigned: dict[str, Target] = field(default_factory=dict)
    """Fixture id -> where the server put it (after a create/update that sent that fixture)."""
    last: Exchange | None = None
    _resolving: set[str] = field(default_factory=set)

    @property
    def definitions(self) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in self.script.resource.get("variable", []) if "name" in v}

    def base_for(self, destination: int | None) -> str:
        if destination is not None and destination in self.destinations:
            return self.destinations[destination].rstrip("/")
        return self.base_url.rstrip("/")

    # -- sources

    def has_source(self, source_id: str) -> bool:
        return source_id in self.exchanges or source_id in self.fixtures

    def exchange(self, source_id: str | None) -> Exchange | None:
        if source_id is None:
            return self.last
        return self.exchanges.get(source_id)

    def content(self, source_id: str | None, *, request: bool = False) -> Any:
        """The body an assert or variable reads: a response (or request) by id, a fixture, or the last response."""
        if source_id is not None and source_id not in self.exchanges:
            if source_id not in self.fixtures:
                raise RunError(f"no fixture or response with id {source_id!r}")
            return self.fixture(source_id)
        exchange = self.exchange(source_id)
        if exchange is None:
            raise RunError("there is no response yet to evaluate against")
        return exchange.request_resource if request else exchange.resource

    def fixture(self, fixture_id: str) -> Any:
        if fixture_id not in self.fixtures:
            raise RunError(f"no fixture with id {fixture_id!r}")
        return self.expand_all(self.fixtures[fixture_id])

    def target(self, target_id: str) -> Target:
        if target_id in self.assigned:
            return self.assigned[target_id]
        if target_id in self.exchanges and (found := target_of(self.exchanges[target_id])):
            return found
        content = self.fixture(target_id) if target_id in self.fixtures else None
        if isinstance(content, dict) and content.get("resourceType") and content.get("id"):
            return Target(content["resourceType"], content["id"], (content.get("meta") or {}).get("versionId"))
        raise RunError(f"targetId {target_id!r} names no resource with an id")

    # -- variables

    def variable(self, name: str) -> str | None:
        if name in self.user_variables:
            return self.user_variables[name]
        definition = self.definitions.get(name)
        if definition is None or name in self._resolving:
            return None
        self._resolving.add(name)
        try:
            value = self._evaluate_variable(definition)
        finally:
            self._resolving.discard(name)
        return value if value not in (None, "") else definition.get("defaultValue")

    def _evaluate_variable(self, definition: dict[str, Any]) -> str | None:
        source = definition.get("sourceId")
        if source is not None and not self.has_source(source):
            return None
        if "headerField" in definition:
            exchange = self.exchange(source)
            return exchange.header(definition["headerField"]) if exchange else None
        if "expression" in definition or "path" in definition:
            try:
                content = self.content(source)
            except RunError:
                return None
            if "expression" in definition:
                values = expressions.evaluate(self.expand(definition["expression"]), content)
            else:
                values = paths.evaluate(self.expand(definition["path"]), content)
            return paths.text(values[0]) if values else None
        return None

    def expand(self, text: str, missing: set[str] | None = None) -> str:
        return self.placeholders.expand(text, self.variable, missing)

    def expand_strict(self, text: str, what: str) -> str:
        missing: set[str] = set()
        out = self.expand(text, missing)
        if missing:
            names = ", ".join(sorted(missing))
            raise RunError(f"{what}: no value for ${{{names}}} (give one with --var NAME=VALUE)")
        return out

    def expand_all(self, value: Any) -> Any:
        return self.placeholders.expand_all(value, self.variable)
