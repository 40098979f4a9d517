"""Re-extract the search entries of stored resources after the registry changed (``$reindex``).

A SearchParameter created through the API indexes new writes at once; resources written before
it have no entries for it until they are reindexed. Reindexing re-runs the indexer on each
current version and replaces its entries through :meth:`Session.reindex
<server.stores.base.Session.reindex>`, which makes no new version and does nothing when the
resource changed meanwhile (the concurrent write indexed it with the current registry already).

The job walks the types of its Task inputs in order, each in keyset pages of ``(type, id)``; its
cursor ``{"type": <index into the inputs>, "after": <keyset of the last done row>}`` is saved with
the progress, so a restart continues after the last saved page (repeating a page is harmless).
``total`` is counted when the job starts; resources created meanwhile may make ``processed``
end above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.fhir.json import load_stored
from server.interactions.services import Services
from server.jobs.runner import Job
from server.search.model import Query
from server.stores.base import Version

CODE = "reindex"
PAGE = 200
"""Resources per page and per write session (SQLite holds its write lock for one page)."""


async def reindex_versions(svc: Services, versions: Sequence[Version]) -> int:
    """Reindex ``versions`` (current versions read earlier) in one write session; returns how
    many were still current and got new entries."""
    done = 0
    async with svc.store.session() as session:
        for v in versions:
            if v.deleted or v.body is None:
                continue
            if await session.reindex(v.type, v.id, v.version, svc.indexer.entries(load_stored(v.body))):
                done += 1
    return done


async def count(svc: Services, type_: str) -> int:
    result = await svc.store.search(Query((type_,), count=0, total="accurate"))
    return result.total or 0


class ReindexJob:
    """The ``reindex`` job kind (Task input ``type``, repeated: the types to walk)."""

    code = CODE

    async def run(self, job: Job) -> None:
        svc = job.svc
        types = job.state.input("type")
        cursor: dict[str, Any] = (job.state.cursor if isinstance(job.state.cursor, dict)
                                  else {"type": 0, "after": None})
        processed = job.state.processed
        if job.state.total is None:
            total = 0
            for type_ in types:
                total += await count(svc, type_)
            await job.progress(processed=processed, cursor=cursor, total=total, force=True)
        for index in range(int(cursor["type"]), len(types)):
            after = cursor["after"] if index == cursor["type"] else None
            while True:
                query = Query((types[index],), count=PAGE, after=tuple(after) if after is not None else None)
                result = await svc.store.search(query)
                await reindex_versions(svc, result.rows)
                processed += len(result.rows)
                after = None if result.next_after is None else list(result.next_after)
                cursor = {"type": index, "after": after} if after is not None else {"type": index + 1, "after": None}
                await job.progress(processed=processed, cursor=cursor)
                if after is None:
                    break
