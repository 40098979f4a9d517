"""Concurrent writes on both stores: every write is applied on top of exactly the version it was
computed from, retried, or refused — never acknowledged and lost.

Requests without If-Match ask for no version-awareness, so a race between them is the server's
business (it serialises or re-runs the request) and every one of them succeeds; requests with
If-Match that lose the race answer 412.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from server.interactions import retry
from server.stores.base import Session, Store, VersionConflict, Write
from tests.conftest import make_client, unique

PATCH = {"Content-Type": "application/json-patch+json"}
N_PATCH = 32
N_PUT = 40


async def _patient(client: httpx.AsyncClient, system: str) -> dict[str, Any]:
    body = {"resourceType": "Patient", "identifier": [{"system": system, "value": "seed"}]}
    r = await client.post("/Patient", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _versions(client: httpx.AsyncClient, type_: str, id_: str) -> list[int]:
    r = await client.get(f"/{type_}/{id_}/_history", params={"_count": "500"})
    assert r.status_code == 200, r.text
    return sorted(int(e["response"]["etag"][3:-1]) for e in r.json()["entry"])


def _add_identifier(system: str, value: str) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/identifier/-", "value": {"system": system, "value": value}}]


async def test_concurrent_patches_lose_nothing(client: httpx.AsyncClient) -> None:
    system = f"urn:{unique('patch')}"
    p = await _patient(client, system)
    answers = await asyncio.gather(*(
        client.patch(f"/Patient/{p['id']}", json=_add_identifier(system, str(i)), headers=PATCH)
        for i in range(N_PATCH)
    ))
    assert [r.status_code for r in answers] == [200] * N_PATCH, [r.text for r in answers if r.status_code != 200]
    final = (await client.get(f"/Patient/{p['id']}")).json()
    assert sorted(i["value"] for i in final["identifier"]) == sorted(["seed", *map(str, range(N_PATCH))])
    assert final["meta"]["versionId"] == str(N_PATCH + 1)
    assert await _versions(client, "Patient", p["id"]) == list(range(1, N_PATCH + 2))
    # every answer is the version it wrote: distinct versions, each holding its own change
    assert len({r.json()["meta"]["versionId"] for r in answers}) == N_PATCH


async def test_concurrent_patches_with_if_match_one_wins(client: httpx.AsyncClient) -> None:
    system = f"urn:{unique('ifm')}"
    p = await _patient(client, system)
    answers = await asyncio.gather(*(
        client.patch(f"/Patient/{p['id']}", json=_add_identifier(system, str(i)),
                     headers={**PATCH, "If-Match": 'W/"1"'})
        for i in range(8)
    ))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [412] * 7, [r.text for r in answers]
    final = (await client.get(f"/Patient/{p['id']}")).json()
    assert final["meta"]["versionId"] == "2" and len(final["identifier"]) == 2


async def test_concurrent_puts_all_succeed(client: httpx.AsyncClient) -> None:
    id_ = unique("put")
    answers = await asyncio.gather(*(
        client.put(f"/Patient/{id_}", json={"resourceType": "Patient", "id": id_, "birthDate": f"19{i + 10}"})
        for i in range(N_PUT)
    ))
    codes = [r.status_code for r in answers]
    assert all(c in (200, 201) for c in codes), [r.text for r in answers if r.status_code >= 300]
    assert codes.count(201) == 1
    versions = await _versions(client, "Patient", id_)
    assert versions == list(range(1, len(versions) + 1))
    # each answer names the version holding its body (identical bodies may share one version)
    for r in answers:
        stored = await client.get(f"/Patient/{id_}/_history/{r.json()['meta']['versionId']}")
        assert stored.json()["birthDate"] == r.json()["birthDate"]


async def test_concurrent_deletes_are_idempotent(client: httpx.AsyncClient) -> None:
    p = await _patient(client, f"urn:{unique('del')}")
    answers = await asyncio.gather(*(client.delete(f"/Patient/{p['id']}") for _ in range(16)))
    assert [r.status_code for r in answers] == [204] * 16, [r.text for r in answers if r.status_code != 204]
    assert (await client.get(f"/Patient/{p['id']}")).status_code == 410
    assert await _versions(client, "Patient", p["id"]) == [1, 2]


async def test_concurrent_patches_and_deletes(client: httpx.AsyncClient) -> None:
    """A patch either lands before the deletion (200) or finds the resource gone (410)."""
    system = f"urn:{unique('pd')}"
    p = await _patient(client, system)
    patches = [client.patch(f"/Patient/{p['id']}", json=_add_identifier(system, str(i)), headers=PATCH)
               for i in range(12)]
    answers = await asyncio.gather(*patches[:6], client.delete(f"/Patient/{p['id']}"), *patches[6:])
    codes = [r.status_code for r in answers]
    assert codes[6] == 204 and all(c in (200, 410) for c in codes[:6] + codes[7:]), codes
    landed = codes.count(200)
    assert await _versions(client, "Patient", p["id"]) == list(range(1, landed + 3))


async def test_concurrent_conditional_and_plain_patches_lose_nothing(client: httpx.AsyncClient) -> None:
    """A conditional patch holds its criteria lock, a plain one the resource's: they race in the
    store, and whichever loses is re-run from the match."""
    system = f"urn:{unique('cond')}"
    p = await _patient(client, system)
    n = 16
    answers = await asyncio.gather(*(
        client.patch(f"/Patient?identifier={system}|seed", json=_add_identifier(system, f"c{i}"), headers=PATCH)
        if i % 2 else client.patch(f"/Patient/{p['id']}", json=_add_identifier(system, f"p{i}"), headers=PATCH)
        for i in range(n)
    ))
    assert [r.status_code for r in answers] == [200] * n, [r.text for r in answers if r.status_code != 200]
    final = (await client.get(f"/Patient/{p['id']}")).json()
    assert len(final["identifier"]) == n + 1
    assert await _versions(client, "Patient", p["id"]) == list(range(1, n + 2))


def _transaction(id_: str, system: str, i: int) -> dict[str, Any]:
    patch = base64.b64encode(orjson.dumps(_add_identifier(system, f"tx{i}"))).decode()
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
             "resource": {"resourceType": "Observation", "status": "final", "code": {"text": system},
                          "subject": {"reference": f"Patient/{id_}"}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
             "request": {"method": "PATCH", "url": f"Patient/{id_}"}},
        ],
    }


async def test_concurrent_transactions_lose_nothing(client: httpx.AsyncClient) -> None:
    system = f"urn:{unique('tx')}"
    p = await _patient(client, system)
    n = 12
    answers = await asyncio.gather(*(client.post("/", json=_transaction(p["id"], system, i)) for i in range(n)))
    assert [r.status_code for r in answers] == [200] * n, [r.text for r in answers if r.status_code != 200]
    final = (await client.get(f"/Patient/{p['id']}")).json()
    assert sorted(i["value"] for i in final["identifier"]) == sorted(["seed", *(f"tx{i}" for i in range(n))])
    assert await _versions(client, "Patient", p["id"]) == list(range(1, n + 2))
    found = (await client.get("/Observation", params={"subject": f"Patient/{p['id']}", "_summary": "count"})).json()
    assert found["total"] == n


async def test_two_servers_on_one_store_lose_nothing(client: httpx.AsyncClient, store: Store) -> None:
    """Two app instances on one store, like two worker processes: requests of one do not queue
    behind the other's in-process locks, so they race in the store and the losers are re-run."""
    system = f"urn:{unique('two')}"
    p = await _patient(client, system)
    async with make_client(store) as other:
        clients = (client, other)
        answers = await asyncio.gather(*(
            clients[i % 2].patch(f"/Patient/{p['id']}", json=_add_identifier(system, str(i)), headers=PATCH)
            for i in range(N_PATCH)
        ), *(clients[i % 2].delete(f"/Patient/{unique('gone')}") for i in range(2)))
        assert [r.status_code for r in answers] == [200] * N_PATCH + [204, 204], [r.text for r in answers]
        final = (await client.get(f"/Patient/{p['id']}")).json()
        assert sorted(i["value"] for i in final["identifier"]) == sorted(["seed", *map(str, range(N_PATCH))])
        assert await _versions(client, "Patient", p["id"]) == list(range(1, N_PATCH + 2))
        puts = await asyncio.gather(*(
            clients[i % 2].put(f"/Patient/{p['id']}", json={**final, "birthDate": f"19{i + 10}"}) for i in range(N_PUT)
        ), *(clients[i % 2].delete(f"/Patient/{p['id']}") for i in range(4)))
        assert all(r.status_code in (200, 201, 204) for r in puts), [r.text for r in puts if r.status_code >= 300]
        versions = await _versions(client, "Patient", p["id"])
        assert versions == list(range(1, len(versions) + 1))


class _AlwaysLosing:
    """A store whose writes to one id always lose the race (another writer got there first)."""

    def __init__(self, inner: Store, doomed: str) -> None:
        self._inner, self.doomed, self.attempts = inner, doomed, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._inner.session() as inner:
            outer = self

            class Losing:
                def __getattr__(self, name: str) -> Any:
                    return getattr(inner, name)

                async def write(self, write: Write) -> None:
                    if write.version.id == outer.doomed:
                        outer.attempts += 1
                        raise VersionConflict(write.version.type, write.version.id, 99)
                    await inner.write(write)

            yield Losing()


async def test_a_write_that_keeps_losing_answers_409_and_stores_nothing(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry, "backoff", lambda attempt: 0.0)
    doomed, bystander = unique("doomed"), unique("bystander")
    assert (await client.put(f"/Patient/{doomed}", json={"resourceType": "Patient", "id": doomed})).status_code == 201
    changed = {"resourceType": "Patient", "id": doomed, "gender": "other"}
    losing = _AlwaysLosing(store, doomed)
    async with make_client(losing) as c:
        r = await c.put(f"/Patient/{doomed}", json=changed)
        assert r.status_code == 409 and r.headers["retry-after"] == "1", r.text
        assert r.json()["issue"][0]["code"] == "conflict"
        assert losing.attempts == retry.ATTEMPTS  # re-run, but boundedly
        losing.attempts = 0
        r = await c.put(f"/Patient/{doomed}", json=changed, headers={"If-Match": 'W/"1"'})
        assert r.status_code == 412 and losing.attempts == 1, r.text  # the client asked: never re-run
        losing.attempts = 0
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": bystander},
             "request": {"method": "PUT", "url": f"Patient/{bystander}"}},
            {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{doomed}"}},
        ]}
        r = await c.post("/", json=tx)
        assert r.status_code == 409, r.text
        assert losing.attempts == retry.ATTEMPTS
        assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert (await client.get(f"/Patient/{doomed}")).json()["meta"]["versionId"] == "1"
    assert (await client.get(f"/Patient/{bystander}")).status_code == 404  # the transaction landed not at all
