"""Shared set-up of the transfer tests: an app whose callers are named by their bearer (the fake-auth
pattern of tests/access/test_leaks.py), two districts with their Organizations, an institution, and
residents with a 健康档案编号 and an active EpisodeOfCare."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request

from server.access.principal import Principal
from server.app import create_app
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE, unique

RECORD = "urn:oid:2.16.156.10011.1.2"
USCC = "urn:oid:2.16.156.10011.1.5"
TASKS = "http://yidang.org/fhir/CodeSystem/task-code"


class FakeAuth:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def principal(self, request: Request) -> Principal:
        name = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if name not in self.principals:
            raise Unauthenticated("No valid bearer token")
        return self.principals[name]


class World:
    """The client, the callers' institutions and the two district Organizations."""

    def __init__(self, client: httpx.AsyncClient, run: str) -> None:
        self.client = client
        self.run = run
        self.d1, self.d2, self.inst = f"D1{run}", f"D2{run}", f"I{run}"
        self.org1 = self.org2 = self.clinic1 = ""
        self.app: Any = None

    async def as_(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {who}", **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def create(self, who: str, resource: dict[str, Any]) -> str:
        r = await self.as_(who, "POST", f"/{resource['resourceType']}", json=resource)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def get(self, who: str, url: str) -> dict[str, Any]:
        r = await self.as_(who, "GET", url)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def resident(self, *, org: str | None = None) -> tuple[str, str, str]:
        """A Patient managed by ``org`` (default: district 1's community clinic) written by the institution,
        with a record number and an active EpisodeOfCare of that organization: (patient, episode, number)."""
        org = org or self.clinic1
        number = "44030" + unique("r").replace("-", "")
        pid = await self.create("inst", {
            "resourceType": "Patient", "identifier": [{"use": "official", "system": RECORD, "value": number}],
            "name": [{"text": "张伟"}], "gender": "male", "birthDate": "1960-05-01",
            "managingOrganization": {"reference": f"Organization/{org}"}})
        eid = await self.create("inst", {
            "resourceType": "EpisodeOfCare", "status": "active",
            "type": [{"coding": [{"system": "http://yidang.org/fhir/CodeSystem/programme", "code": "hypertension"}]}],
            "patient": {"reference": f"Patient/{pid}"}, "managingOrganization": {"reference": f"Organization/{org}"},
            "period": {"start": "2020-01-01"}})
        return pid, eid, number

    def transfer_task(self, pid: str, *, requester: str | None = None, owner: str | None = None) -> dict[str, Any]:
        return {"resourceType": "Task", "status": "requested", "intent": "order",
                "code": {"coding": [{"system": TASKS, "code": "transfer-record"}]},
                "for": {"reference": f"Patient/{pid}"},
                "requester": {"reference": f"Organization/{self.org2}",
                              "identifier": {"system": USCC, "value": requester or self.d2}},
                "owner": {"reference": f"Organization/{self.org1}",
                          "identifier": {"system": USCC, "value": owner or self.d1}},
                "reasonCode": {"text": "居民迁居"}}


def params(*values: tuple[str, str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": n, k: v} for n, k, v in values]}


def out(body: dict[str, Any], name: str) -> list[Any]:
    found = []
    for p in body.get("parameter", []):
        if p["name"] == name:
            found.append(p.get("resource") or p.get("valueReference"))
    return found


async def make_world(store: Store, **settings: Any) -> World:
    run = unique("tr").replace("-", "")
    app = create_app(Settings(base_url=BASE, log_requests=False, **settings), store=store)
    scopes = ("system/*.cruds",)
    app.state.auth = FakeAuth({
        "platform": Principal("ops", "client", "platform", f"P{run}", scopes, client_id="ops"),
        "d1": Principal("d1", "client", "district", f"D1{run}", scopes, client_id="d1"),
        "d2": Principal("d2", "client", "district", f"D2{run}", scopes, client_id="d2"),
        "d1read": Principal("d1r", "client", "district", f"D1{run}", ("system/*.rs",), client_id="d1r"),
        "inst": Principal("inst", "client", "institution", f"I{run}", scopes, client_id="inst"),
    })
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)
    w = World(client, run)
    w.app = app
    w.org1 = await w.create("platform", {"resourceType": "Organization", "name": "一区卫健局",
                                         "identifier": [{"system": USCC, "value": w.d1}]})
    w.org2 = await w.create("platform", {"resourceType": "Organization", "name": "二区卫健局",
                                         "identifier": [{"system": USCC, "value": w.d2}]})
    w.clinic1 = await w.create("platform", {"resourceType": "Organization", "name": "一区社区卫生服务中心",
                                            "identifier": [{"system": USCC, "value": f"C1{run}"}],
                                            "partOf": {"reference": f"Organization/{w.org1}"}})
    return w
