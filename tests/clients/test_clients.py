"""Third-party FHIR clients against a real ``yidang serve`` process.

fhirpy (async, aiohttp) and fhirclient (SMART's Python client, requests) are used as an
integrating vendor would use them: create, conditional create in each client's own form (fhirpy's
``create(identifier=…)`` and ``get_or_create`` put the criteria in the POST query string), read,
update, search with paging followed to the end, and a transaction Bundle. Nobody here wrote these
clients, so they catch conventions the in-process tests assume away. fhir-kit-client (npm) runs
the same steps from Node.js (``fhir_kit_client.mjs``); it installs from the npm registry, so it is
marked slow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.served import Served, served

SYSTEM = "urn:oid:2.16.156.10011.1.3"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("clients"), "--log-level", "warning") as s:
        yield s


def _tag() -> str:
    return f"client-{uuid.uuid4().hex[:10]}"


async def test_fhirpy_create_read_update_search_and_paging(server: Served) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
    family = _tag()
    patient = client.resource("Patient", name=[{"family": family, "given": ["Ann"]}], gender="female")
    await patient.save()
    assert patient["id"]
    fetched = await client.reference("Patient", patient["id"]).to_resource()
    assert fetched["name"][0]["family"] == family
    patient["birthDate"] = "1990-01-02"
    await patient.save()
    assert (await client.reference("Patient", patient["id"]).to_resource())["birthDate"] == "1990-01-02"
    for i in range(23):
        await client.resource("Patient", name=[{"family": family, "given": [f"p{i}"]}]).save()
    everyone = await client.resources("Patient").search(family=family).limit(5).fetch_all()
    assert len(everyone) == 24
    assert len({p["id"] for p in everyone}) == 24


async def test_fhirpy_conditional_create_forms_never_duplicate(server: Served) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
    number = uuid.uuid4().hex[:12]
    identifier = [{"system": SYSTEM, "value": number}]
    first = client.resource("Patient", identifier=identifier, name=[{"family": "Wang"}])
    await first.create(identifier=f"{SYSTEM}|{number}")  # POST /Patient?identifier=…
    second = client.resource("Patient", identifier=identifier, name=[{"family": "Wang"}])
    await second.create(identifier=f"{SYSTEM}|{number}")
    assert second["id"] == first["id"]
    third, created = await client.resources("Patient").search(identifier=f"{SYSTEM}|{number}").get_or_create(
        client.resource("Patient", identifier=identifier))
    assert not created and third["id"] == first["id"]
    found = await client.resources("Patient").search(identifier=f"{SYSTEM}|{number}").fetch_all()
    assert [p["id"] for p in found] == [first["id"]]


async def test_fhirpy_transaction(server: Served) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
    family = _tag()
    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c2f7e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "name": [{"family": family}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                          "subject": {"reference": "urn:uuid:6f1c2f7e-0000-4000-8000-000000000001"}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    response = await client.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201", "201"]
    observations = await client.resources("Observation").search(**{"subject:Patient.family": family}).fetch_all()
    assert len(observations) == 1


def test_fhirclient_create_read_search(server: Served) -> None:
    from fhirclient import client
    from fhirclient.models.humanname import HumanName
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "yidang-tests", "api_base": server.base + "/"})
    family = _tag()
    patient = Patient({"name": [{"family": family, "given": ["Li"]}], "gender": "male"})
    created = patient.create(smart.server)
    assert created is not None and created["resourceType"] == "Patient"
    read = Patient.read(created["id"], smart.server)
    assert isinstance(read.name[0], HumanName) and read.name[0].family == family
    for i in range(11):
        Patient({"name": [{"family": family, "given": [f"n{i}"]}]}).create(smart.server)
    found = list(Patient.where(struct={"family": family, "_count": "4"}).perform_resources_iter(smart.server))
    assert len(found) == 12
    read.gender = "female"
    read.update(smart.server)
    assert Patient.read(created["id"], smart.server).gender == "female"


@pytest.mark.parametrize("path", ["Patient", "Observation", "Bundle"])
def test_fhirclient_parses_what_the_server_serves(server: Served, path: str, tmp_path: Path) -> None:
    """Whatever the server answers for a search parses in fhirclient's strict R4 models."""
    from fhirclient import client
    from fhirclient.models.bundle import Bundle

    smart = client.FHIRClient(settings={"app_id": "yidang-tests", "api_base": server.base + "/"})
    raw = smart.server.request_json(f"{path}?_count=50")
    bundle = Bundle(raw, strict=True)
    assert bundle.type == "searchset"


@pytest.mark.slow
def test_fhir_kit_client_from_npm(server: Served, tmp_path_factory: pytest.TempPathFactory) -> None:
    """fhir-kit-client (the npm client most Node EHR integrations use), installed from the npm
    registry into a temporary folder; skipped only where Node.js or npm is missing."""
    import json
    import shutil
    import subprocess

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed to run fhir-kit-client")
    work = tmp_path_factory.mktemp("fhir-kit-client")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "fhir-kit-client@2"], cwd=work,
                   check=True, timeout=300, capture_output=True)
    script = work / "fhir_kit_client.mjs"
    shutil.copy(Path(__file__).with_name("fhir_kit_client.mjs"), script)
    tag = _tag()
    done = subprocess.run([node, str(script), server.base, tag], cwd=work, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["readFamily"] == tag
    assert seen["conditionalCreateId"] == seen["createdId"]
    assert seen["conditionalUpdateId"] == seen["createdId"] and seen["conditionalUpdateGender"] == "female"
    assert seen["pagedIds"] == 12 and seen["pages"] == 3
    assert seen["transactionStatuses"] == ["201", "201"]
    assert seen["missing"] == 404
