"""A transfer is audited by the endpoint hook like every interaction (issue 16 §1: "AuditEvents")."""

from __future__ import annotations

import asyncio

import pytest

from server.stores.base import Store
from tests.transfer.helpers import USCC, make_world, params


async def test_transfer_writes_an_audit_event(store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    w = await make_world(store, audit=True, data_dir=tmp_path_factory.mktemp("audit"), audit_batch_interval=0.002)
    try:
        pid, _, _ = await w.resident()
        r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=params(
            ("target-organization", "valueIdentifier", {"system": USCC, "value": w.d2}),
            ("reason", "valueString", "迁居")))
        assert r.status_code == 200, r.text
        events: list[dict] = []
        for _ in range(100):
            found = await w.get("platform", f"/AuditEvent?patient=Patient/{pid}&_count=100")
            events = [e["resource"] for e in found.get("entry", [])
                      if "$transfer" in str(e["resource"]) or "transfer" in str(e["resource"].get("subtype"))]
            if events:
                break
            await asyncio.sleep(0.05)
        assert events, "no AuditEvent of the $transfer"
        assert events[0]["outcome"] == "0"
    finally:
        await w.app.state.audit.stop()
        await w.client.aclose()
