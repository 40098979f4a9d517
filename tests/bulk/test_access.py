"""Bulk Data under authorization (issue 16 §2 / issue 13) on both stores: an institution's export holds
only its own records, another client cannot poll, download or cancel it (404), no token is 401, the
platform may; tokens without system/ scopes cannot start one; the manifest requires a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.auth.conftest import AuthApp, get_token, make_auth_app, register
from tests.bulk.helpers import ASYNC, auth, download, everything, kick_off, wait
from tests.conftest import unique

pytestmark = pytest.mark.asyncio
OTHER = "12440000455858999Y"


@pytest_asyncio.fixture(scope="module")
async def bulk_auth(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthApp]:
    yield make_auth_app(store, tmp_path_factory.mktemp("keys"), bulk_dir=tmp_path_factory.mktemp("bulk"))


async def test_an_institution_exports_only_its_own(bulk_auth: AuthApp) -> None:
    async with bulk_auth.client() as c:
        a = await get_token(c, await register(bulk_auth.store, role="institution"))
        b_client = await register(bulk_auth.store, role="institution", institution=OTHER)
        b = await get_token(c, b_client)
        platform = await get_token(c, await register(bulk_auth.store, role="platform"))
        mine, theirs = unique("pa"), unique("pb")
        for token, pid in ((a, mine), (b, theirs)):
            response = await c.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers=auth(token))
            assert response.status_code == 201, response.text
        searched = (await c.get("/Patient", params={"_summary": "count"}, headers=auth(a))).json()["total"]
        url = await kick_off(c, "/$export", {"_type": "Patient"}, token=a)
        manifest = await wait(c, url, a)
        assert manifest["requiresAccessToken"] is True
        got = await everything(c, manifest, a)
        ids = {p["id"] for p in got["Patient"]}
        assert mine in ids and theirs not in ids and len(ids) == searched
        file_url = manifest["output"][0]["url"]
        # another client: the job does not exist for it
        assert (await c.get(url, headers=auth(b))).status_code == 404
        assert (await c.get(file_url, headers=auth(b))).status_code == 404
        assert (await c.delete(url, headers=auth(b))).status_code == 404
        # no token
        assert (await c.get(url)).status_code == 401
        assert (await c.get(file_url)).status_code == 401
        # the platform may
        assert len(await download(c, file_url, platform)) == len(ids)
        # the owner again, after the others tried
        assert len(await download(c, file_url, a)) == len(ids)


async def test_who_may_start_one(bulk_auth: AuthApp) -> None:
    async with bulk_auth.client() as c:
        resident = await get_token(c, await register(bulk_auth.store, role="resident", scope="patient/*.rs",
                                                     patient="p1"))
        refused = await c.get("/$export", headers={**ASYNC, **auth(resident)})
        assert refused.status_code == 403
        district = await get_token(c, await register(bulk_auth.store, role="district", scope="system/*.rs"))
        no_import = await c.post("/$import", content=b'{"resourceType":"Patient","id":"x"}',
                                 headers={**ASYNC, **auth(district), "Content-Type": "application/fhir+ndjson"})
        assert no_import.status_code == 403
        institution = await get_token(c, await register(bulk_auth.store, role="institution", scope="system/Patient.rs"))
        hidden_type = await c.get("/$export", params={"_type": "Observation"}, headers={**ASYNC, **auth(institution)})
        assert hidden_type.status_code == 403


async def test_import_is_checked_by_the_grant(bulk_auth: AuthApp) -> None:
    async with bulk_auth.client() as c:
        b = await get_token(c, await register(bulk_auth.store, role="institution", institution=OTHER))
        a = await get_token(c, await register(bulk_auth.store, role="institution"))
        theirs = unique("pb")
        assert (await c.put(f"/Patient/{theirs}", json={"resourceType": "Patient", "id": theirs},
                            headers=auth(b))).status_code == 201
        mine = unique("pa")
        body = (b'{"resourceType":"Patient","id":"%s","gender":"male"}\n{"resourceType":"Patient","id":"%s"}'
                % (theirs.encode(), mine.encode()))
        response = await c.post("/$import", content=body,
                                headers={**ASYNC, **auth(a), "Content-Type": "application/fhir+ndjson"})
        assert response.status_code == 202, response.text
        manifest = await wait(c, response.headers["Content-Location"], a)
        assert manifest["output"] == [{"type": "Patient", "count": 1}]
        errors = await download(c, manifest["error"][0]["url"], a)
        assert errors[0]["issue"][0]["location"] == ["line 1"]
        assert "gender" not in (await c.get(f"/Patient/{theirs}", headers=auth(b))).json()


