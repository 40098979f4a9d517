"""What an interaction returns to the HTTP layer (or to a Bundle entry)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from server.errors import Issue
from server.stores.base import Version


@dataclass
class Result:
    status: int
    version: Version | None = None
    """The version the interaction produced or found: drives ETag, Location, Last-Modified."""
    resource: dict[str, Any] | None = None
    """A body that is not simply ``version.body`` (search/history Bundles, subsetted reads)."""
    issues: list[Issue] = field(default_factory=list)
    """Informational OperationOutcome issues (e.g. why a conditional create matched)."""
    created: bool = False
    """True when a Location header is due (201 Created)."""
    headers: dict[str, str] = field(default_factory=dict)
    stream: tuple[str, AsyncIterator[bytes]] | None = None
    """A body that is not FHIR, sent as is: (media type, chunks), e.g. a bulk data file (issue 16)."""

    def body(self) -> bytes | dict[str, Any] | None:
        if self.resource is not None:
            return self.resource
        if self.version is not None and self.version.body is not None:
            return self.version.body
        return None
