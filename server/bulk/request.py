"""A bulk request as the job persists it: the kick-off's checked parameters and who asked.

The job runs later (and maybe in another process, after a restart), so everything it needs is
here: the requesting :class:`~server.access.principal.Principal` (its grant is rebuilt from the
Policy when the job runs), the types, filters and the time of the kick-off. Stored as JSON in the
job Task's ``request`` input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from server.access.principal import Principal

EXPORT = "bulk-export"
IMPORT = "bulk-import"
"""Job kinds (Task codes) of the bulk jobs."""
Level = Literal["system", "patient", "group"]
Kind = Literal["export", "import"]


def status_url(base: str, job_id: str) -> str:
    """The status URL a kick-off answers with (``Content-Location``)."""
    return f"{base}/_bulk/{job_id}"


def file_url(base: str, job_id: str, name: str) -> str:
    return f"{base}/_bulk/{job_id}/{name}"


@dataclass(frozen=True)
class BulkRequest:
    kind: Kind
    request: str
    """The kick-off URL as the client sent it (the manifest's ``request``)."""
    transaction_time: int
    """µs since 1970: when the kick-off was accepted."""
    principal: Principal
    level: Level = "system"
    types: tuple[str, ...] = ()
    """Types to export, in order (explicit ``_type``, or what the level covers)."""
    since: int | None = None
    """``_since`` in µs (resources changed after it, IG 2.0)."""
    type_filters: dict[str, list[str]] = field(default_factory=dict)
    """``_typeFilter`` query strings by type (several for one type: any of them)."""
    elements: tuple[str, ...] = ()
    patients: tuple[str, ...] | None = None
    """Patient ids whose compartments are exported (``patient`` parameter or Group members);
    None: every patient's (Patient level) or everything (system level)."""
    group: str | None = None
    gzip: bool = False
    inputs: tuple[tuple[str, str], ...] = ()
    """``$import``: (type, source) per input: a file path the server may read, or ``upload:<name>``."""
    notes: tuple[str, ...] = ()
    """Parameters ignored at kick-off (reported in the manifest's ``error`` as informational)."""

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, raw: str) -> BulkRequest:
        data: dict[str, Any] = orjson.loads(raw)
        principal = data.pop("principal")
        principal["scopes"] = tuple(principal.get("scopes", ()))
        patients = data.pop("patients")
        return cls(
            principal=Principal(**principal),
            patients=None if patients is None else tuple(patients),
            types=tuple(data.pop("types")),
            elements=tuple(data.pop("elements")),
            inputs=tuple((a, b) for a, b in data.pop("inputs")),
            notes=tuple(data.pop("notes")),
            **data,
        )
