"""Bundle rules beyond the bdl-* invariants: fullUrls, references between entries, documents and messages.

http://hl7.org/fhir/R4/bundle.html:

- ``entry.fullUrl`` is an absolute URL (or urn:uuid/urn:oid) and, when it is a RESTful url,
  agrees with the resource's type and id (http://hl7.org/fhir/R4/bundle.html#bundle-unique);
- references between entries resolve as http://hl7.org/fhir/R4/bundle.html#references says
  (:class:`profiles.references.BundleIndex`): a ``urn:`` reference that names no entry can never
  be resolved; a version-specific reference must name an entry with that ``meta.versionId``; a
  plain reference that matches several versions of an entry is ambiguous;
- a document (http://hl7.org/fhir/R4/documents.html) starts with a Composition and a message
  (http://hl7.org/fhir/R4/messaging.html) with a MessageHeader — bdl-11 and bdl-12, checked here
  natively so that they hold even when core invariants are switched off;
- in a document every reference should resolve inside the document.

The bdl-* invariants themselves run with the other core invariants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from profiles.codes import BUSINESS_RULE, NOT_FOUND, REQUIRED, STRUCTURE, VALUE
from profiles.issues import ERROR, WARNING
from profiles.references import BundleIndex, parse_reference

if TYPE_CHECKING:
    from profiles.walker import Walk

FIRST_RESOURCE = {"document": "Composition", "message": "MessageHeader"}
MUST_RESOLVE = frozenset({"document", "message", "transaction", "batch"})
"""Bundle types whose urn references can only mean entries of the same Bundle."""


def _absolute(url: str) -> bool:
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme.isalpha() and not url.startswith(("#",))


def check_bundle(walk: Walk, bundle: dict[str, Any], path: str) -> None:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        entries = []
    bundle_type = bundle.get("type")
    first = FIRST_RESOURCE.get(str(bundle_type))
    if first is not None and not walk.engine.core_invariants:
        resource = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != first:
            walk.report(ERROR, BUSINESS_RULE, f"a {bundle_type} Bundle must have a {first} as its first entry "
                        f"(http://hl7.org/fhir/R4/bundle.html)", f"{path}.entry[0]")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        full_url = entry.get("fullUrl")
        if full_url is None and _needs_full_url(bundle_type, entry):
            walk.report(ERROR, REQUIRED, "the entry has no fullUrl: it must have one except in a transaction or "
                        "batch (and their responses) and for a search outcome (Bundle.entry.fullUrl, "
                        "http://hl7.org/fhir/R4/bundle-definitions.html#Bundle.entry.fullUrl)", f"{path}.entry[{i}]")
        if not isinstance(full_url, str):
            continue
        where = f"{path}.entry[{i}].fullUrl"
        if not _absolute(full_url):
            walk.report(ERROR, VALUE, f"the fullUrl {full_url!r} must be an absolute URL or a urn:uuid/urn:oid "
                        "(http://hl7.org/fhir/R4/bundle.html#bundle-unique)", where)
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict) or full_url.startswith("urn:"):
            continue
        parsed = parse_reference(full_url)
        if parsed.type is None:
            continue
        if parsed.type != resource.get("resourceType") or parsed.id != resource.get("id"):
            walk.report(ERROR, BUSINESS_RULE, f"the fullUrl {full_url} does not match the entry's resource "
                        f"({resource.get('resourceType')}/{resource.get('id')})", where)


UNIDENTIFIED = frozenset({"transaction", "batch", "transaction-response", "batch-response"})
"""Bundle types whose entries may lack a fullUrl: a POST creates the identity, operation results may have none."""


def _needs_full_url(bundle_type: Any, entry: dict[str, Any]) -> bool:
    """R4 Bundle.entry.fullUrl: "SHALL have a value except that fullUrl can be empty on a POST … Results from
    operations might involve resources that are not identified" — an entry carrying a resource, outside
    transactions/batches and their responses, that is not a search's OperationOutcome."""
    if not isinstance(entry.get("resource"), dict) or bundle_type in UNIDENTIFIED:
        return False
    search = entry.get("search")
    return not (isinstance(search, dict) and search.get("mode") == "outcome")


def check_reference(walk: Walk, index: BundleIndex, text: str, referrer: dict[str, Any],
                    expression: str) -> dict[str, Any] | None:
    """Resolve a reference inside a Bundle, reporting what cannot or cannot unambiguously resolve."""
    found = index.resolve(text, referrer)
    if len(found) == 1:
        return found[0]
    reference = parse_reference(text)
    where = f"{expression}.reference"
    if len(found) > 1:
        walk.report(ERROR, STRUCTURE, f"the reference {text} matches {len(found)} entries of the Bundle (different "
                    "versions or duplicates): make it version-specific", where)
        return found[0]
    if reference.version is not None and reference.type is not None and reference.id is not None:
        unversioned = text.split("/_history/", 1)[0]
        if index.resolve(unversioned, referrer):
            walk.report(ERROR, NOT_FOUND, f"the reference {text} names version {reference.version}, which is not in "
                        "the Bundle", where)
            return None
    if reference.urn:
        severity = ERROR if index.type in MUST_RESOLVE else WARNING
        walk.report(severity, NOT_FOUND, f"the reference {text} is a urn that names no entry of the Bundle, so it "
                    "cannot be resolved", where)
    elif index.type == "document":
        walk.report(WARNING, NOT_FOUND, f"the reference {text} does not resolve to an entry of the document "
                    "(http://hl7.org/fhir/R4/documents.html#content)", where)
    return None
