"""A multi-institution world for the look-up and recognition tests (one per store and module).

Three hospitals (H1, H2, H3) and two community centres (C1, C2), each with its own record of
resident R1 (its own record number; C1's record has only the 居民健康卡号, linked through H1's record
that carries both), resident R2 at C2 only (health card only) with a Consent, and the recognition
catalogue and qualifications imported from CSV. Callers are fake principals (``Bearer <name>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request

from server.access.principal import Principal
from server.app import create_app
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE, unique

ID_CARD = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
LOINC = "http://loinc.org"
ITEMS = "http://yidang.org/fhir/sid/recognition-item-test"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
MRN = "http://example.org/fhir/sid/mrn/"
STATUS_EXT = "http://yidang.org/fhir/StructureDefinition/recognition-status"
HR = ("http://yidang.org/fhir/CodeSystem/recognition", "HR")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(seed: int) -> str:
    """A 居民身份证号 with a valid GB 11643 check digit."""
    body = f"110101{1960 + seed % 40:04d}0101{seed % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


class FakeAuth:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def principal(self, request: Request) -> Principal:
        name = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if name not in self.principals:
            raise Unauthenticated("No valid bearer token")
        return self.principals[name]


def days_ago(n: int) -> str:
    return (datetime.now(UTC) - timedelta(days=n)).isoformat(timespec="seconds")


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    run: str
    inst: dict[str, str] = field(default_factory=dict)
    org: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    id_card: str = ""
    health_card: str = ""
    r2_card: str = ""
    import_summaries: list[dict[str, Any]] = field(default_factory=list)

    async def as_(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {who}", **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def create(self, who: str, resource: dict[str, Any], key: str) -> str:
        r = await self.as_(who, "POST", f"/{resource['resourceType']}", json=resource)
        assert r.status_code == 201, r.text
        self.ids[key] = r.json()["id"]
        return self.ids[key]

    async def lookup(self, who: str, **params: Any) -> httpx.Response:
        return await self.as_(who, "GET", "/Patient/$cross-lookup", params=params)

    async def drain(self) -> None:
        assert await self.app.state.audit.drain()


def catalog_csv() -> bytes:
    return ("item_system,item_code,item_name,category,validity_days,scope\n"
            f"{LOINC},2345-7,血糖,laboratory,30,province\n"
            f"{LOINC},4548-4,糖化血红蛋白,检验,90,city\n"
            f"{ITEMS},CT-CHEST,胸部CT,imaging,180,national\n"
            f"{LOINC},718-7,血红蛋白,laboratory,seven,city\n"           # bad days
            f"{LOINC},777-3,血小板,microscopy,30,city\n"              # bad category
            f"{LOINC},2345-7,血糖 again,laboratory,30,province\n"     # duplicate
            "just,two\n").encode()                                   # too few columns


def qualifications_csv(inst: dict[str, str]) -> bytes:
    return ("institution,item_system,item_code,valid_from,valid_to\n"
            f"{inst['H1']},{LOINC},2345-7,2020-01-01,2099-12-31\n"
            f"{inst['H2']},{LOINC},2345-7,2019-01-01,2019-12-31\n"     # lapsed: lab-not-qualified now
            f"{inst['H3']},{ITEMS},CT-CHEST,2020-01-01,2099-12-31\n"
            f"{inst['C1']},{LOINC},4548-4,2020-01-01,2099-12-31\n"
            f"UNKNOWN{inst['H1']},{LOINC},2345-7,2020-01-01,2099-12-31\n"  # unknown institution
            f"{inst['H1']},{LOINC},2345-7,2024-13-01,2099-12-31\n"   # bad date
            f"{inst['H1']},{LOINC},999-9,2020-01-01,2099-12-31\n").encode()  # item not in catalogue


def report(subject: str, code: tuple[str, str] | None, issued: str, *, category: str | None = "LAB",
           org: str | None = None, results: Sequence[str] = (), studies: Sequence[str] = (),
           text: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "DiagnosticReport", "status": "final",
                           "code": {"coding": [{"system": code[0], "code": code[1]}]} if code else {"text": text},
                           "subject": {"reference": f"Patient/{subject}"}, "effectiveDateTime": issued,
                           "issued": issued}
    if category:
        out["category"] = [{"coding": [{"system": V2_0074, "code": category}]}]
    if org:
        out["performer"] = [{"reference": f"Organization/{org}"}]
    if results:
        out["result"] = [{"reference": f"Observation/{i}"} for i in results]
    if studies:
        out["imagingStudy"] = [{"reference": f"ImagingStudy/{i}"} for i in studies]
    return out


async def build(store: Store, tmp: Path) -> World:
    run = unique("xl").replace("-", "")
    settings = Settings(base_url=BASE, log_requests=False, audit=True, data_dir=tmp, audit_batch_interval=0.002)
    app = create_app(settings, store=store)
    inst = {k: f"{k}{run}" for k in ("H1", "H2", "H3", "C1", "C2")}
    principals: dict[str, Principal] = {
        "platform": Principal("platform", "client", "platform", f"P{run}", ("system/*.*",), client_id="platform"),
        "district": Principal("district", "client", "district", f"D{run}", ("system/*.rs",), client_id="district"),
    }
    for key, value in inst.items():
        low = key.lower()
        principals[low] = Principal(low, "client", "institution", value, ("system/*.*",), client_id=low,
                                    purpose="TREAT")
        principals[f"{low}-nopurpose"] = Principal(low, "client", "institution", value, ("system/*.*",),
                                                   client_id=low)
        principals[f"{low}-btg"] = Principal(low, "client", "institution", value, ("system/*.*",), client_id=low,
                                             purpose="BTG")
    app.state.auth = FakeAuth(principals)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)
    w = World(client, app, run, inst)
    for key, value in inst.items():
        w.org[key] = await w.create("platform", {"resourceType": "Organization", "name": key,
                                                 "identifier": [{"system": "http://example.org/uscc",
                                                                 "value": value}]}, f"org-{key}")
    seed = int(run[-6:], 16)
    w.id_card, w.health_card, w.r2_card = id_number(seed), f"HC{run}", f"HC2{run}"
    strong = [{"system": ID_CARD, "value": w.id_card}]
    for key in ("H1", "H2", "H3"):
        assigner = {"reference": f"Organization/{w.org[key]}"}
        idents = [{"system": MRN + key, "value": f"{key}-{seed}", "assigner": assigner}, *strong]
        if key == "H1":
            idents.append({"system": HEALTH_CARD, "value": w.health_card})
        await w.create(key.lower(), {"resourceType": "Patient", "identifier": idents, "name": [{"text": "张三"}],
                                     "gender": "male"}, f"p-{key}")
    await w.create("c1", {"resourceType": "Patient", "identifier": [
        {"system": MRN + "C1", "value": f"C1-{seed}"}, {"system": HEALTH_CARD, "value": w.health_card}]},
        "p-C1")
    await w.create("c2", {"resourceType": "Patient", "identifier": [
        {"system": MRN + "C2", "value": f"C2-{seed}"}, {"system": HEALTH_CARD, "value": w.r2_card}]}, "p-R2")
    # the catalogue and qualifications
    for kind, body in (("catalog", catalog_csv()), ("qualifications", qualifications_csv(inst))):
        r = await w.as_("platform", "POST", "/$recognition-import", params={"kind": kind}, content=body,
                        headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        w.import_summaries.append(r.json())
    ids = w.ids
    # results
    obs_c1 = await w.create("c1", {"resourceType": "Observation", "status": "final",
                                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                             "observation-category", "code": "laboratory"}]}],
                                   "code": {"coding": [{"system": LOINC, "code": "4548-4"}]},
                                   "subject": {"reference": f"Patient/{ids['p-C1']}"},
                                   "valueQuantity": {"value": 6.1, "unit": "%"}}, "o-hba1c")
    obs_x = await w.create("c1", {"resourceType": "Observation", "status": "final",
                                  "code": {"coding": [{"system": LOINC, "code": "1234-5"}]},
                                  "subject": {"reference": f"Patient/{ids['p-C1']}"}}, "o-other")
    study = await w.create("h3", {"resourceType": "ImagingStudy", "status": "available",
                                  "subject": {"reference": f"Patient/{ids['p-H3']}"}}, "is-ct")
    await w.create("h1", report(ids["p-H1"], (LOINC, "2345-7"), days_ago(5), org=w.org["H1"]), "recognized")
    await w.create("h1", report(ids["p-H1"], (LOINC, "2345-7"), days_ago(60), org=w.org["H1"]), "expired")
    await w.create("h2", report(ids["p-H2"], (LOINC, "2345-7"), days_ago(3), org=w.org["H2"]), "lab-not-qualified")
    await w.create("h3", report(ids["p-H3"], (ITEMS, "CT-CHEST"), days_ago(10), category="CT", org=w.org["H3"],
                                studies=[study]), "imaging")
    await w.create("c1", report(ids["p-C1"], (LOINC, "1234-5"), days_ago(20), org=w.org["C1"], results=[obs_x]),
                   "not-in-catalogue")
    await w.create("h2", report(ids["p-H2"], None, days_ago(1), category=None, org=w.org["H2"], text="会诊意见"),
                   "not-applicable")
    await w.create("c1", report(ids["p-C1"], (LOINC, "24331-1"), days_ago(2), org=w.org["C1"], results=[obs_c1]),
                   "panel")
    await w.create("c2", report(ids["p-R2"], (LOINC, "2345-7"), days_ago(4), org=w.org["C2"]), "r2-report")
    return w
