"""The operation table: which ``$name`` runs at which level, for which types, with which methods.

``OPERATIONS`` is the single list the HTTP routes dispatch through and the CapabilityStatement is
generated from, so an operation is either fully wired or not claimed at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from server.errors import BadRequest, MethodNotAllowed, NotFound
from server.interactions.result import Result
from server.interactions.services import Services

Level = Literal["system", "type", "instance"]


@dataclass(frozen=True)
class Invocation:
    """One call of an operation: where it was invoked and its input parameters."""

    svc: Services
    name: str
    level: Level
    method: str
    base: str
    type: str | None
    id: str | None
    params: list[tuple[str, Any]]
    """Input parameters in order: query parameters (strings) and ``Parameters.parameter`` values
    (``value[x]`` as given, or the ``resource``)."""
    resource: dict[str, Any] | None
    """The request body when it is not a Parameters resource (e.g. ``$validate`` with a resource)."""
    body: bytes = b""
    content_type: str = ""
    strict: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    """The request's headers (``Prefer: respond-async`` of the asynchronous operations)."""

    def get(self, name: str) -> Any | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[Any]:
        return [value for key, value in self.params if key == name]


Handler = Callable[[Invocation], Awaitable[Result]]


@dataclass(frozen=True)
class Operation:
    name: str
    """Without the ``$``."""
    levels: frozenset[Level]
    handler: Handler
    types: frozenset[str] | None = None
    """Resource types it applies to at type/instance level; None = every type."""
    affects_state: bool = False
    """If True only POST is allowed (http://hl7.org/fhir/R4/operations.html#executing)."""
    definition: str | None = None
    """Canonical url of the OperationDefinition."""
    raw_body: bool = False
    """Pass a non-FHIR body through untouched (e.g. CSV for data-set ingest)."""
    inputs: frozenset[str] | None = None
    """Names of the input parameters, for an operation that also takes a resource of any type in the body
    (``$validate``): a Parameters body is its input only when every parameter it carries is one of these
    (:func:`server.operations.parameters.is_input`); any other body, a Parameters resource included, is the
    resource itself. None: a Parameters body is always the input."""
    documentation: str = field(default="")

    def applies(self, level: Level, type_: str | None) -> bool:
        return level in self.levels and (self.types is None or type_ is None or type_ in self.types)


class OperationTable:
    def __init__(self, operations: list[Operation]) -> None:
        self._by_name: dict[str, list[Operation]] = {}
        for op in operations:
            self._by_name.setdefault(op.name, []).append(op)

    def all(self) -> list[Operation]:
        return [op for ops in self._by_name.values() for op in ops]

    def find(self, name: str, level: Level, type_: str | None, method: str) -> Operation:
        candidates = self._by_name.get(name)
        if not candidates:
            raise NotFound(f"Operation ${name} is not supported by this server")
        for op in candidates:
            if op.applies(level, type_):
                if method == "GET" and op.affects_state:
                    raise MethodNotAllowed(f"${name} changes data and must be invoked with POST")
                return op
        where = f"on {type_}" if type_ else f"at {level} level"
        raise BadRequest(f"Operation ${name} cannot be invoked {where}")
