"""Patient-scoped requests through the API on a MongoDB store in its "behind mongos" mode (issue 12 §3).

Two API stacks over nx-27017: one whose store routes like a sharded cluster (capability
``sharded`` forced; its searches carry the shard key ``sk``, see server/stores/mongo/sharding.py)
and a plain one, loaded with the same residents, including resources that name several residents
(an Observation performed by another patient, a Patient linked to a duplicate, a Group). Every
patient-scoped request answers the same on both, and the ``__explain`` plan of the routed one shows
the ``sk`` condition mongos targets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.stores.mongo import MongoStore
from server.stores.mongo.capabilities import Capabilities
from tests.conftest import make_client

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "sr-1", "name": [{"family": "Routed"}]},
    {"resourceType": "Patient", "id": "sr-2", "name": [{"family": "Other"}]},
    {"resourceType": "Patient", "id": "sr-3", "link": [{"other": {"reference": "Patient/sr-1"}, "type": "seealso"}]},
    {"resourceType": "Observation", "id": "sr-a", "status": "final", "code": {"text": "hr"},
     "subject": {"reference": "Patient/sr-1"}},
    {"resourceType": "Observation", "id": "sr-b", "status": "final", "code": {"text": "hr"},
     "subject": {"reference": "Patient/sr-2"}, "performer": [{"reference": "Patient/sr-1"}]},
    {"resourceType": "Observation", "id": "sr-c", "status": "final", "code": {"text": "hr"},
     "subject": {"reference": "Patient/sr-2"}},
    {"resourceType": "Encounter", "id": "sr-e", "status": "finished", "class": {"code": "AMB"},
     "subject": {"reference": "Patient/sr-1"}},
    {"resourceType": "Group", "id": "sr-g", "type": "person", "actual": True,
     "member": [{"entity": {"reference": "Patient/sr-1"}}, {"entity": {"reference": "Patient/sr-2"}}]},
]

REQUESTS = [
    "Patient/sr-1/Observation",
    "Patient/sr-1/Observation?code:text=hr",
    "Patient/sr-1/*",
    "Patient/sr-1/$everything",
    "Patient/sr-2/$everything",
    "Observation?patient=Patient/sr-1",
    "Observation?subject=Patient/sr-2",
    "Observation?performer=Patient/sr-1",
    "Encounter?patient=Patient/sr-1",
    "Patient?_id=sr-1",
    "Group?member=Patient/sr-2",
]


@pytest_asyncio.fixture(scope="module")
async def clients(mongo_server_uri: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    stores = {name: MongoStore(mongo_server_uri, database=f"t_route_{name}_{uuid.uuid4().hex[:8]}", capabilities=caps)
              for name, caps in (("plain", Capabilities()), ("routed", Capabilities(sharded=True)))}
    out: dict[str, httpx.AsyncClient] = {}
    for name, store in stores.items():
        await store.open()
        out[name] = make_client(store)
        for r in RESOURCES:
            put = await out[name].put(f"/{r['resourceType']}/{r['id']}", json=r)
            assert put.status_code in (200, 201), put.text
    yield out
    for name, store in stores.items():
        await out[name].aclose()
        await store.close()


def found(body: dict[str, Any]) -> list[str]:
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", ())
                  if e.get("search", {}).get("mode") == "match")


@pytest.mark.parametrize("request_path", REQUESTS)
async def test_routed_requests_answer_as_unrouted_ones(clients: dict[str, httpx.AsyncClient],
                                                       request_path: str) -> None:
    plain = await clients["plain"].get(f"/{request_path}")
    routed = await clients["routed"].get(f"/{request_path}")
    assert plain.status_code == routed.status_code == 200, routed.text
    assert found(routed.json()) == found(plain.json())
    assert found(routed.json())


async def test_everything_of_a_resident_includes_resources_naming_other_residents_too(
        clients: dict[str, httpx.AsyncClient]) -> None:
    body = (await clients["routed"].get("/Patient/sr-1/$everything")).json()
    assert found(body) == ["Encounter/sr-e", "Group/sr-g", "Observation/sr-a", "Observation/sr-b", "Patient/sr-1",
                           "Patient/sr-3"]


@pytest.mark.parametrize(("request_path", "routed"), [
    ("Patient/sr-1/Observation", True),
    ("Observation?patient=Patient/sr-1", True),
    ("Observation?code:text=hr", False),
])
async def test_explain_shows_the_shard_key_of_patient_scoped_searches(clients: dict[str, httpx.AsyncClient],
                                                                      request_path: str, routed: bool) -> None:
    sep = "&" if "?" in request_path else "?"
    body = (await clients["routed"].get(f"/{request_path}{sep}__explain=true")).json()
    plan = "\n".join(i.get("diagnostics", "") for e in body["entry"] if e["search"]["mode"] == "outcome"
                     for i in e["resource"]["issue"])
    assert ('"sk"' in plan and '"Patient/sr-1"' in plan and '"~shared"' in plan) == routed, plan
