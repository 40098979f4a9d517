"""A resident reads "who read my record" (健康档案开放查询): the AuditEvents about his or her own
record and no others, with the institution and purpose shown and the individual clinician masked;
an auditor sees them whole; an institution sees none. Both stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from server.access.principal import Principal
from server.app import create_app
from server.settings import Settings
from server.stores.base import Store
from tests.access.test_leaks import FakeAuth
from tests.conftest import BASE, unique

HOSPITAL = "12440000455858436X"


@pytest_asyncio.fixture(scope="module")
async def setup(store: Store, tmp_path_factory) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:  # type: ignore[no-untyped-def]
    run = unique("rv")
    settings = Settings(base_url=BASE, log_requests=False, audit=True, data_dir=tmp_path_factory.mktemp("rv"),
                        audit_batch_interval=0.002)
    app = create_app(settings, store=store)
    ids = {"me": f"me-{run}", "other": f"other-{run}"}
    app.state.auth = FakeAuth({
        "doctor": Principal("dr-li", "user", "institution", HOSPITAL, ("user/*.cruds",), purpose="TREAT",
                            client_id="his"),
        "platform": Principal("ops", "client", "platform", "P", ("system/*.*",), client_id="ops"),
        "me": Principal("zhang", "user", "resident", HOSPITAL, ("patient/*.rs",), patient=ids["me"],
                        client_id="app"),
        "auditor": Principal("aud", "client", "auditor", "A", ("system/AuditEvent.rs",), client_id="aud"),
    })
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        for key in ("me", "other"):
            r = await c.put(f"/Patient/{ids[key]}", json={"resourceType": "Patient", "id": ids[key]},
                            headers={"Authorization": "Bearer doctor"})
            assert r.status_code == 201, r.text
            r = await c.get(f"/Patient/{ids[key]}", headers={"Authorization": "Bearer doctor"})
            assert r.status_code == 200
        assert await app.state.audit.drain()
        yield c, ids
    await app.state.audit.stop()


async def test_a_resident_sees_who_read_the_record_without_the_clinician(setup) -> None:  # type: ignore[no-untyped-def]
    client, ids = setup
    r = await client.get(f"/AuditEvent?patient=Patient/{ids['me']}", headers={"Authorization": "Bearer me"})
    assert r.status_code == 200, r.text
    events = [e["resource"] for e in r.json().get("entry", []) if e["resource"]["resourceType"] == "AuditEvent"]
    assert len(events) >= 2  # the doctor's write and read
    for event in events:
        text = str(event)
        assert "dr-li" not in text, json.dumps(event, ensure_ascii=False)  # the individual clinician is masked
        assert HOSPITAL in text  # the institution that read it is shown
        assert any(a.get("purposeOfUse") for a in event["agent"])  # and for what
        assert all("network" not in a for a in event["agent"])
    everything = await client.get("/AuditEvent?_count=200", headers={"Authorization": "Bearer me"})
    for entry in everything.json().get("entry", []):
        resource = entry["resource"]
        if resource["resourceType"] == "AuditEvent":
            assert ids["other"] not in str(resource)  # nobody else's access log


async def test_others_views(setup) -> None:  # type: ignore[no-untyped-def]
    client, ids = setup
    auditor = await client.get(f"/AuditEvent?patient=Patient/{ids['me']}", headers={"Authorization": "Bearer auditor"})
    assert auditor.status_code == 200 and "dr-li" in auditor.text  # auditors see the person
    other = await client.get(f"/AuditEvent?patient=Patient/{ids['other']}", headers={"Authorization": "Bearer me"})
    assert other.status_code == 200 and not [
        e for e in other.json().get("entry", []) if e["resource"]["resourceType"] == "AuditEvent"]
    doctor = await client.get("/AuditEvent", headers={"Authorization": "Bearer doctor"})
    assert doctor.status_code == 403
