"""SearchParameter resources written through the API drive the search registry
(http://hl7.org/fhir/R4/searchparameter.html, http://hl7.org/fhir/R4/search.html#custom).

- Before a write, :func:`server.interactions.write.store_version` asks the registry to
  :meth:`~server.search.registry.SearchRegistry.check` the parameter: one this server cannot
  index (unknown type, base or component, an expression that does not compile) is refused with
  422 and nothing is stored.
- After the write session commits, :func:`listener` activates the new parameter (or deactivates
  a deleted one, or the old url of one whose url changed): the next write indexes it and the next
  search can use it. Resources stored earlier get its entries from ``$reindex``. A write that
  rolls back never touches the registry.
- At start-up, :func:`load` activates every SearchParameter in the store, so a restart keeps them.

Two stored SearchParameters may share a url; the most recently written one is active, and
deleting it brings the other one back. Each process keeps its own registry: with several server
processes on one store, the others pick a new parameter up at their next start (a known gap).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import orjson

from server.errors import FhirError
from server.interactions.services import CommitListener, Services
from server.search.model import Query
from server.search.parse import parse_criteria
from server.stores.base import Version

log = logging.getLogger(__name__)

TYPE = "SearchParameter"
PAGE = 500


def _activate(svc: Services, resource: dict[str, Any], where: str) -> bool:
    try:
        svc.registry.add(resource)
        return True
    except FhirError as exc:
        log.warning("SearchParameter %s (%s) is not active: %s", where, resource.get("url"), exc.message)
        return False


async def _stored_with_url(svc: Services, url: str) -> list[Version]:
    where = parse_criteria(TYPE, urlencode({"url": url}), svc.registry)
    result = await svc.store.search(Query((TYPE,), where, count=PAGE))
    return result.rows


async def _deactivate(svc: Services, url: str, *, replaced_by: str) -> None:
    svc.registry.remove(url)
    for other in await _stored_with_url(svc, url):
        if other.id != replaced_by and other.body is not None:
            _activate(svc, orjson.loads(other.body), f"{TYPE}/{other.id}")
            return


async def apply(svc: Services, version: Version) -> None:
    """Bring the registry in line with one committed SearchParameter version."""
    previous_url = None
    if version.version > 1:
        prior = await svc.store.vread(version.type, version.id, version.version - 1)
        if prior is not None and prior.body is not None:
            previous_url = orjson.loads(prior.body).get("url")
    current = None if version.deleted or version.body is None else orjson.loads(version.body)
    if isinstance(previous_url, str) and (current is None or current.get("url") != previous_url):
        await _deactivate(svc, previous_url, replaced_by=version.id)
    if current is not None:
        _activate(svc, current, f"{TYPE}/{version.id}")


def listener(svc: Services) -> CommitListener:
    """The commit listener that keeps ``svc.registry`` in step with stored SearchParameters."""

    async def on_commit(versions: list[Version]) -> None:
        for version in versions:
            if version.type == TYPE:
                await apply(svc, version)

    return on_commit


async def load(svc: Services) -> int:
    """Activate every stored SearchParameter (at start-up), oldest first so that of two with one
    url the newer wins; composites last, so the components they name are active first. Returns
    how many became active; broken ones are logged."""
    resources: list[tuple[str, int, dict[str, Any]]] = []
    after: tuple[object, ...] | None = None
    while True:
        result = await svc.store.search(Query((TYPE,), count=PAGE, after=after))
        resources += [(v.id, v.last_updated, orjson.loads(v.body)) for v in result.rows if v.body is not None]
        if result.next_after is None:
            break
        after = result.next_after
    resources.sort(key=lambda item: (item[2].get("type") == "composite", item[1]))
    return sum(_activate(svc, resource, f"{TYPE}/{id_}") for id_, _, resource in resources)
