"""The shared sample corpora through the REST API, on both stores.

- All 711 official R4 examples are PUT under their ids and read back equal apart from ``meta``;
  the few the validator rejects are reported and must stay rare, and they still round-trip when
  validation is off.
- All 61 Synthea patient bundles (the 3 the repository carries, without ``../shared``) load as
  transactions, and the per-patient resource counts of ``index.json`` are reproduced.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from server.grading.grade import STAMPED_SYSTEMS
from tests.conftest import make_client
from tests.paths import FULL_SAMPLES, SAMPLES

SHARED = SAMPLES
EXAMPLES = sorted((SHARED / "r4-examples").glob("*.json"))
SYNTHEA = SHARED / "synthea"

pytestmark = pytest.mark.slow


def without_meta(resource: dict, sent: dict | None = None) -> dict:
    """``resource`` without what the server sets in ``meta``: versionId, lastUpdated and the grading
    labels every write is stamped with (data level and category, and a v3-Confidentiality code the
    client did not send: ``sent`` is what it sent). The client's own meta must come back as sent."""
    out = {k: v for k, v in resource.items() if k != "meta"}
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if sent is not None and isinstance(meta.get("security"), list):
        own = {(c.get("system"), c.get("code")) for c in sent.get("meta", {}).get("security", [])}
        kept = [c for c in meta["security"] if c.get("system") not in STAMPED_SYSTEMS
                or (c.get("system"), c.get("code")) in own]
        meta = {**meta, "security": kept} if kept else {k: v for k, v in meta.items() if k != "security"}
    if meta:
        out["meta"] = meta
    return out


async def put_example(client: httpx.AsyncClient, path: Path) -> tuple[dict, httpx.Response]:
    resource = orjson.loads(path.read_bytes())
    r = await client.put(f"/{resource['resourceType']}/{resource['id']}", content=orjson.dumps(resource),
                         headers={"Content-Type": "application/fhir+json"})
    return resource, r


async def test_official_examples_load_and_read_back_equal(store) -> None:  # type: ignore[no-untyped-def]
    assert len(EXAMPLES) == 711
    rejected: list[tuple[str, str]] = []
    async with make_client(store) as client:
        for path in EXAMPLES:
            resource, r = await put_example(client, path)
            if r.status_code == 422:
                rejected.append((path.name, r.json()["issue"][0]["diagnostics"]))
                continue
            assert r.status_code in (200, 201), (path.name, r.text[:300])
            back = await client.get(f"/{resource['resourceType']}/{resource['id']}")
            assert without_meta(back.json(), resource) == without_meta(resource), path.name
    rate = len(rejected) / len(EXAMPLES)
    print(f"\nofficial examples rejected by validation: {len(rejected)}/711 = {rate:.1%}")
    for name, why in rejected:
        print(f"  {name}: {why[:160]}")
    assert rate < 0.03, rejected
    async with make_client(store, validate_on_write=False) as lenient:
        for name, _ in rejected:
            resource, r = await put_example(lenient, SHARED / "r4-examples" / name)
            assert r.status_code in (200, 201), (name, r.text[:300])
            back = await lenient.get(f"/{resource['resourceType']}/{resource['id']}")
            assert without_meta(back.json(), resource) == without_meta(resource), name


async def test_synthea_bundles_load_as_transactions(store) -> None:  # type: ignore[no-untyped-def]
    index = json.loads((SYNTHEA / "index.json").read_text())
    assert len(index) == (61 if FULL_SAMPLES else 3)  # the repository carries 3 of the 61 bundles
    totals: Counter[str] = Counter()
    async with make_client(store) as client:
        for item in index:
            body = gzip.decompress((SYNTHEA / item["file"]).read_bytes())
            r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 200, (item["file"], r.text[:500])
            created = Counter(e["response"]["location"].split("/")[0] for e in r.json()["entry"])
            assert dict(created) == item["resource_counts"], item["file"]
            totals.update(item["resource_counts"])
            locations = [e["response"]["location"] for e in r.json()["entry"]]
            patient = next(loc.split("/")[1] for loc in locations if loc.startswith("Patient/"))
            for type_ in ("Encounter", "Observation", "Condition", "Procedure"):
                expected = item["resource_counts"].get(type_, 0)
                found = await client.get(f"/{type_}", params={"patient": f"Patient/{patient}", "_summary": "count"})
                assert found.json()["total"] == expected, (item["file"], type_)
        for type_, expected in totals.items():
            found = await client.get(f"/{type_}", params={"_summary": "count"})
            assert found.json()["total"] >= expected, type_
