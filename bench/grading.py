"""In-process cost of masking on read (issue 14 §3): the same Patient read N times through the ASGI app
(SQLite store, no network) by callers of different clearances, and the pure functions alone.

    .venv/bin/python -m bench.grading [N]

- ``open``: authorization off (no grading code runs);
- ``platform``: clearance 5 covers every level (no grading code runs);
- ``institution``: clearance 4, the Patient is stamped L4: decided from the stored bytes (no parse);
- ``district``: clearance 3: parsed, masked, re-serialised.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from starlette.requests import Request

from server.access.principal import Principal
from server.app import create_app
from server.errors import Unauthenticated
from server.grading.body import mask_stored
from server.grading.grade import stamp
from server.grading.policy import load_policy
from server.settings import Settings
from server.stores.sqlite import SqliteStore

BASE = "http://bench/fhir"
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}],
    "name": [{"text": "张三", "family": "张", "given": ["三"]}], "gender": "male", "birthDate": "1949-12-31",
    "telecom": [{"system": "phone", "value": "13812345678"}],
    "address": [{"line": ["东华门街道1号"], "state": "北京市", "city": "北京市", "district": "东城区"}],
}


class Auth:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def principal(self, request: Request) -> Principal:
        name = request.headers.get("authorization", "").removeprefix("Bearer ")
        if name not in self.principals:
            raise Unauthenticated("no token")
        return self.principals[name]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp))
        await store.open()
        app = create_app(Settings(base_url=BASE, log_requests=False, audit=False), store=store)
        inst = "12440000455858436X"
        app.state.auth = Auth({
            "platform": Principal("p", "client", "platform", inst, ("system/*.*",), client_id="p"),
            "institution": Principal("i", "client", "institution", inst, ("system/*.*",), client_id="i"),
            "district": Principal("d", "client", "institution", inst, ("system/*.*",), client_id="d"),
        })
        app.state.services.settings = app.state.services.settings.model_copy(update={"clearance_clients": {"d": 3}})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
            r = await c.post("/Patient", json=PATIENT, headers={"Authorization": "Bearer institution"})
            pid = r.json()["id"]
            print(f"{'caller':<12} {'µs/read':>8}  masked")
            for who in ("open", "platform", "institution", "district", "open", "institution", "district"):
                headers = {} if who == "open" else {"Authorization": f"Bearer {who}"}
                if who == "open":
                    saved, app.state.auth = app.state.auth, None
                for _ in range(200):
                    await c.get(f"/Patient/{pid}", headers=headers)
                started = time.perf_counter()
                for _ in range(n):
                    r = await c.get(f"/Patient/{pid}", headers=headers)
                elapsed = (time.perf_counter() - started) / n * 1e6
                if who == "open":
                    app.state.auth = saved
                print(f"{who:<12} {elapsed:8.1f}  {'REDACTED' in r.text}")
        await store.close()
    policy = load_policy()
    resource = dict(PATIENT)
    stamp(resource, policy)
    body = orjson.dumps(resource)
    for clearance in (4, 3):
        started = time.perf_counter()
        for _ in range(n):
            mask_stored(body, policy, clearance)
        print(f"mask_stored clearance {clearance}: {(time.perf_counter() - started) / n * 1e6:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
