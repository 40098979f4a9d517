"""The one path every write takes: check, validate, stamp ``meta``, index, and store.

Shared by create, update, patch, delete and the Bundle processors, so versioning rules
(http://hl7.org/fhir/R4/http.html#versioning) live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.access.grant import WriteKind
from server.errors import BadRequest, Contention, Issue, NotFound, PreconditionFailed, Unprocessable
from server.fhir.ids import is_valid_id
from server.fhir.instant import to_instant
from server.fhir.json import canonical, dumps, load_stored
from server.interactions.offload import is_large, off_loop
from server.interactions.services import Services
from server.search.model import Entry
from server.stores.base import Method, Session, Version, VersionConflict, Write


def check_type(svc: Services, type_: str) -> None:
    if type_ not in svc.resource_types:
        raise NotFound(f"Unknown resource type '{type_}'")


def check_grant(svc: Services, kind: WriteKind, type_: str, new: dict[str, Any] | None,
                current: Version | None) -> None:
    """403 unless the caller's grant allows this write: ``new`` is what would be stored (None for a
    delete), ``current`` the stored version it replaces (a deleted or missing one: nothing). Called
    before anything about ``current`` is answered (its version in a 412, its content in a no-op
    200), so another institution's resource reveals no more than that it may not be written."""
    if svc.grant.open:
        return
    old = load_stored(current.body) if current is not None and not current.deleted and current.body else None
    svc.grant.check_write(kind, type_, new, old)


async def last_content(svc: Services, current: Version | None) -> Version | None:
    """``current``, or for a deletion the last version before it with content: whose source
    institution a re-creation over the deleted id is decided against (an id and its history stay
    its owner's, never taken over by an update-as-create of another institution)."""
    if current is None or not current.deleted:
        return current
    for number in range(current.version - 1, 0, -1):
        before = await svc.store.vread(current.type, current.id, number)
        if before is not None and not before.deleted and before.body is not None:
            return before
    return None


def check_body(resource: dict[str, Any], type_: str) -> None:
    if resource.get("resourceType") != type_:
        raise BadRequest(
            f"resourceType '{resource.get('resourceType')}' does not match the URL's type '{type_}'",
            expression=("resourceType",),
        )


def body_id(resource: dict[str, Any]) -> str | None:
    """The body's ``id`` (None when absent); 400 naming ``id`` when it is not a string, which
    would otherwise reach the id checks and the store as a number (``{"id": 5}``)."""
    if "id" not in resource:
        return None
    rid = resource["id"]
    if not isinstance(rid, str):
        raise BadRequest(f"The resource id must be a JSON string, not {type(rid).__name__} {rid!r}",
                         expression=("id",))
    return rid


def check_update_id(resource: dict[str, Any], id_: str) -> None:
    """400 unless the body carries the URL's id, and that is a valid id (http.html#update: "If no id
    element is provided, or the id disagrees with the id in the URL, the server SHALL respond with an
    HTTP 400"). Checked before validation, so it is never reported as a 422."""
    rid = body_id(resource)
    if rid is None:
        raise BadRequest("The resource in an update must carry an id equal to the URL's id", expression=("id",))
    if rid != id_:
        raise BadRequest(f"The resource id '{rid}' does not match the URL's id '{id_}'", expression=("id",))
    if not is_valid_id(id_):
        raise BadRequest(f"'{id_}' is not a valid resource id", expression=("id",))


def validate(svc: Services, resource: dict[str, Any]) -> list[Issue]:
    """Run the validator; errors end the write with 422, warnings are returned for the outcome."""
    if not svc.settings.validate_on_write:
        return []
    issues = svc.validate(resource)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        raise Unprocessable(
            f"{resource.get('resourceType')} failed validation: {errors[0].diagnostics}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            issues=issues,
        )
    return issues


def parse_etag(value: str | None) -> int | None:
    """``W/"3"`` (or ``"3"``, or ``3``) -> 3; raises 400 on anything else."""
    if value is None:
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    # "²".isdigit() is True and int() refuses it; int() also refuses more than 4300 digits
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise BadRequest(f"Malformed version in If-Match/ETag: {value!r}")
    return int(raw)


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from meta.versionId / meta.lastUpdated (an update that changes nothing). A ``meta``
    that is not an object is a change, left for validation to report (it was a 500 here)."""
    if any(not isinstance(r.get("meta", {}), dict) for r in (a, b)):
        return False

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in r.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
        out = {k: v for k, v in r.items() if k != "meta"}
        if meta:
            out["meta"] = meta
        return out

    return canonical(strip(a)) == canonical(strip(b))  # 1.5 → 1.50 is a change


@dataclass(frozen=True)
class Prepared:
    """Validation issues and search entries computed for a resource before its write session
    (a transaction Bundle prepares its entries outside the store's write lock, so several
    processes can validate and index in parallel while only the writes are serialised).
    Stamping ``meta.versionId``/``lastUpdated`` later does not change the entries."""

    issues: list[Issue]
    entries: list[Entry]


def prepare(svc: Services, resource: dict[str, Any]) -> Prepared:
    """Validate (422 on errors) and index ``resource`` as it will be stored."""
    return Prepared(validate(svc, resource), svc.indexer.entries(resource))


def _prepare_sized(svc: Services, resource: dict[str, Any], body: bytes) -> Prepared:
    """:func:`prepare`, with the store's document-size limit checked first on the resource alone
    (before any validating or indexing) and again with its entries (before anything is written)."""
    type_ = str(resource.get("resourceType"))
    svc.store.check_document(type_, body, ())
    issues = validate(svc, resource)
    return Prepared(issues, _index_sized(svc, type_, resource, body, checked=True))


async def prepare_large(svc: Services, resource: dict[str, Any]) -> Prepared | None:
    """:func:`prepare` in a worker thread for a large resource (see :mod:`.offload`); None for a small
    one, which the caller validates and indexes on the event loop as before."""
    body = dumps(resource)
    if not is_large(len(body)):
        return None
    return await off_loop(len(body), _prepare_sized, svc, resource, body)


def _index_sized(svc: Services, type_: str, resource: dict[str, Any], body: bytes, *,
                 checked: bool = False) -> list[Entry]:
    """The entries of ``resource``; a large one is checked against the store's document-size limit
    before indexing (unless ``checked`` already) and after. A small one cannot reach the limit."""
    if not is_large(len(body)):
        return svc.indexer.entries(resource)
    if not checked:
        svc.store.check_document(type_, body, ())
    entries = svc.indexer.entries(resource)
    svc.store.check_document(type_, body, entries)
    return entries


async def store_version(
    svc: Services,
    session: Session,
    resource: dict[str, Any] | None,
    *,
    type_: str,
    id_: str,
    current: Version | None,
    method: Method,
    if_match: int | None = None,
    entries: list[Entry] | None = None,
) -> Version:
    """Write the next version of ``type_/id_`` (``resource`` None = a deletion) after ``current``.

    Stamps ``id`` and ``meta``, indexes, and stores with compare-and-set on ``current``'s version —
    the one the caller read and computed ``resource`` from, never a re-read: a concurrent writer
    makes this raise :class:`Contention` (re-run by :mod:`.retry`) or 412 when the client sent
    If-Match, never lose an update."""
    if not is_valid_id(id_):
        raise BadRequest(f"'{id_}' is not a valid resource id", expression=("id",))
    if if_match is not None and (current is None or current.deleted or current.version != if_match):
        have = "no current version" if current is None or current.deleted else f"version {current.version}"
        raise PreconditionFailed(f"If-Match expected version {if_match} of {type_}/{id_}, but it has {have}")
    number = (current.version + 1) if current is not None else 1
    lu = svc.clock()
    if current is not None and lu <= current.last_updated:
        lu = current.last_updated + 1
    body: bytes | None = None
    if resource is None:
        entries = []
    else:
        if type_ == "SearchParameter":
            svc.registry.check(resource)  # one this server cannot index is refused before storing (422)
        resource["id"] = id_
        if not isinstance(resource.get("meta") or {}, dict):  # reached only with validation off
            raise BadRequest("meta must be a JSON object", expression=("meta",))
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(number)
        meta["lastUpdated"] = to_instant(lu)
        resource["meta"] = meta
        body = dumps(resource)
        if entries is None:
            entries = await off_loop(len(body), _index_sized, svc, type_, resource, body)
    version = Version(type_, id_, number, lu, resource is None, method, body)
    try:
        await session.write(Write(version, entries, current.version if current is not None else None))
    except VersionConflict as exc:
        error = PreconditionFailed if if_match is not None else Contention
        raise error(f"{type_}/{id_} was changed by another request (now at version {exc.current}); retry") from exc
    return version
