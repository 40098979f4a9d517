"""read and vread (http://hl7.org/fhir/R4/http.html#read, #vread), with conditional read."""

from __future__ import annotations

from collections.abc import Mapping

from profiles.model import core_model
from server.errors import BadRequest, Gone, NotFound
from server.fhir.ids import is_valid_id
from server.fhir.json import load_stored
from server.fhir.summary import SUMMARY_MODES, elements, summarize
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import can_see, read_visible
from server.interactions.write import check_type
from server.stores.base import Version

MAX_VERSION = 2**63 - 1
"""No version number is larger (both stores keep it as a signed 64-bit integer): a larger one is
simply not there, and must not reach the store, whose integer types would overflow (a 500)."""


def _deleted(version: Version) -> Gone:
    return Gone(
        f"{version.type}/{version.id} was deleted (version {version.version})",
        headers={"ETag": f'W/"{version.version}"'},
    )


async def read(
    svc: Services,
    type_: str,
    id_: str,
    *,
    if_none_match: int | None = None,
    if_modified_since: int | None = None,
) -> Result:
    check_type(svc, type_)
    version = await read_visible(svc, type_, id_) if is_valid_id(id_) else None
    if version is None:
        raise NotFound(f"{type_}/{id_} is not known")  # a hidden resource is answered like a missing one
    if version.deleted:
        raise _deleted(version)
    if if_none_match is not None and if_none_match == version.version:
        return Result(304, version)
    # If-Modified-Since has second precision (HTTP-date): compare whole seconds
    if if_modified_since is not None and version.last_updated // 1_000_000 <= if_modified_since // 1_000_000:
        return Result(304, version)
    return Result(200, version)


async def vread(svc: Services, type_: str, id_: str, vid: str) -> Result:
    check_type(svc, type_)
    if not (vid.isascii() and vid.isdigit()) or len(vid) > 19 or int(vid) > MAX_VERSION:
        raise NotFound(f"{type_}/{id_} has no version '{vid}'")
    version = await svc.store.vread(type_, id_, int(vid)) if is_valid_id(id_) else None
    if version is None or not (svc.grant.open or await _may_see_version(svc, version)):
        raise NotFound(f"{type_}/{id_} has no version {vid}")
    if version.deleted:
        raise _deleted(version)
    return Result(200, version)


async def _may_see_version(svc: Services, version: Version) -> bool:
    """A version is seen only while its resource is: one that is hidden now (its source changed,
    or it was transferred) answers 404 for its old versions too, exactly as a missing resource."""
    current = await svc.store.read(version.type, version.id)
    return await can_see(svc, version) and (current is None or current.version == version.version
                                            or await can_see(svc, current))


def subset(result: Result, params: Mapping[str, str]) -> Result:
    """Apply ``_summary`` / ``_elements`` to a read (http://hl7.org/fhir/R4/search.html#summary)."""
    mode = params.get("_summary")
    names = params.get("_elements")
    if result.status != 200 or result.version is None or result.version.body is None or not (mode or names):
        return result
    if mode is not None and mode not in SUMMARY_MODES:
        raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}", expression=("_summary",))
    resource = load_stored(result.version.body)
    if names:
        resource = elements(resource, [n.strip() for n in names.split(",") if n.strip()], core_model())
    elif mode not in ("false", "count"):
        resource = summarize(resource, mode or "false", core_model())
    return Result(200, result.version, resource=resource, headers={"ETag": f'W/"{result.version.version}"'})
