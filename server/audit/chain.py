"""The hash chain over stored AuditEvents (pure).

Each stored AuditEvent carries, in the extension :data:`CHAIN_URL`, its ``sequence`` (gapless per
store, from 1), the ``previous`` event's hash and its own ``hash``:
``SHA-256(canonical JSON of the event without meta and without the chain extension || "\\n" ||
sequence || "\\n" || previous)``. Changing an event's content breaks its own hash; deleting one leaves
a gap in the sequence; reordering (renumbering) breaks the next event's ``previous``. A signed
anchor (after a prune) says where the chain now starts: its sequence and the hash the first
remaining event must name as ``previous``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from server.fhir.json import canonical

CHAIN_URL = "http://yidang.org/fhir/StructureDefinition/audit-chain"
GENESIS = "0" * 64
"""``previous`` of the first event of a chain that was never pruned."""


@dataclass(frozen=True, slots=True)
class Link:
    sequence: int
    previous: str
    hash: str


def content(event: dict[str, Any]) -> dict[str, Any]:
    """The event as hashed: without ``meta`` (stamped by the store) and without the chain extension."""
    out = {k: v for k, v in event.items() if k not in ("meta", "extension")}
    others = [e for e in event.get("extension") or () if not (isinstance(e, dict) and e.get("url") == CHAIN_URL)]
    if others:
        out["extension"] = others
    return out


def digest(event: dict[str, Any], sequence: int, previous: str) -> str:
    data = canonical(content(event)) + b"\n" + str(sequence).encode() + b"\n" + previous.encode()
    return hashlib.sha256(data).hexdigest()


def seal(event: dict[str, Any], sequence: int, previous: str) -> Link:
    """Put the chain extension on ``event`` (in place) as the event after ``previous``."""
    link = Link(sequence, previous, digest(event, sequence, previous))
    others = [e for e in event.get("extension") or () if not (isinstance(e, dict) and e.get("url") == CHAIN_URL)]
    event["extension"] = [*others, {"url": CHAIN_URL, "extension": [
        {"url": "sequence", "valueInteger": sequence},
        {"url": "previous", "valueString": previous},
        {"url": "hash", "valueString": link.hash},
    ]}]
    return link


def link_of(event: dict[str, Any]) -> Link | None:
    """The chain fields an event claims; None when it has none (or they are malformed)."""
    for ext in event.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == CHAIN_URL:
            fields = {e.get("url"): e for e in ext.get("extension") or () if isinstance(e, dict)}
            try:
                return Link(int(fields["sequence"]["valueInteger"]), str(fields["previous"]["valueString"]),
                            str(fields["hash"]["valueString"]))
            except (KeyError, TypeError, ValueError):
                return None
    return None


@dataclass
class Walk:
    """Checks events one by one in stored order; the first problem is kept in :attr:`broken`."""

    start: int = 1
    """The sequence of the first event expected (after an anchor: its sequence + 1)."""
    previous: str = GENESIS
    count: int = 0
    broken: str | None = None
    last: Link | None = None
    unchained: int = 0
    """AuditEvents without the chain extension stored before the chain's first event (written
    before auditing was turned on): passed over, counted."""
    hashes: dict[int, str] | None = None
    """When set, the hash of every sequence listed in it is recorded (checkpoints to compare)."""

    def add(self, event_id: str, event: dict[str, Any]) -> bool:
        """Take the next event; False once the chain is broken (stop walking)."""
        if self.broken is not None:
            return False
        link = link_of(event)
        if link is None and self.last is None:
            self.unchained += 1
            return True
        if link is None:
            self.broken = f"AuditEvent/{event_id} carries no chain extension (inserted outside the chain?)"
            return False
        if link.sequence < self.start:  # left by a prune interrupted after its anchor was written
            return True
        expected = self.last.sequence + 1 if self.last else self.start
        if link.sequence > expected:
            self.broken = (f"events {expected}..{link.sequence - 1} are missing (deleted?) before "
                           f"AuditEvent/{event_id} (sequence {link.sequence})")
        elif link.sequence < expected:
            self.broken = (f"AuditEvent/{event_id} (sequence {link.sequence}) is out of order: "
                           f"sequence {expected} expected (reordered or duplicated)")
        elif link.previous != (self.last.hash if self.last else self.previous):
            self.broken = (f"AuditEvent/{event_id} (sequence {link.sequence}) names previous hash "
                           f"{link.previous[:16]}… but event {expected - 1} has "
                           f"{(self.last.hash if self.last else self.previous)[:16]}… (reordered or replaced)")
        elif digest(event, link.sequence, link.previous) != link.hash:
            self.broken = f"AuditEvent/{event_id} (sequence {link.sequence}) was changed: its hash does not match"
        if self.broken is not None:
            return False
        if self.hashes is not None and link.sequence in self.hashes:
            self.hashes[link.sequence] = link.hash
        self.last = link
        self.count += 1
        return True
