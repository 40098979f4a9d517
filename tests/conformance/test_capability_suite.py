"""The ``capability`` suite (conformance/capability): generated from a server's CapabilityStatement.

Yidang passes all of it on both stores (on a set of types that covers the awkward ones: Bundle,
Binary, Parameters, conformance resources the server acts on when stored); the deliberately broken
server of test_nonconformant_server, given a CapabilityStatement that declares what it does badly,
is reported with a failure for each declared-but-broken promise.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.capability import generate
from conformance.capability.generate import capability_scripts
from conformance.capability.minimal import minimal_resource
from conformance.capability.values import search_value
from conformance.runner import RunOptions, ScriptError, ScriptResult, run_script
from profiles.definitions import core
from profiles.validator import full_validator
from server.stores.base import Store
from tests.conformance import test_nonconformant_server as broken
from tests.conftest import BASE, make_client

TYPES = ["Patient", "Observation", "Bundle", "Binary", "Parameters", "SearchParameter", "StructureDefinition",
         "ValueSet", "Linkage", "CapabilityStatement"]


def _problems(results: list[ScriptResult]) -> list[tuple[str, str, str]]:
    return [(r.name, a.label, a.message) for r in results
            for a in r.setup + [x for t in r.tests for x in t.actions] + r.teardown if a.outcome != "pass"]


@pytest.mark.parametrize("types", [TYPES, pytest.param(None, marks=pytest.mark.slow)], ids=["some-types", "all-types"])
async def test_yidang_passes_the_capability_suite(store: Store, types: list[str] | None) -> None:
    async with make_client(store) as client:
        started = time.perf_counter()
        scripts = await generate(client, BASE, types=types)
        results = [await run_script(s, client, RunOptions(base_url=BASE)) for s in scripts]
        elapsed = time.perf_counter() - started
    names = {r.name for r in results}
    assert {"capability Patient", "capability Patient search", "capability system"} <= names
    assert all(r.error is None for r in results)
    assert _problems(results) == []
    assert sum(len(r.tests) for r in results) > 200
    assert elapsed < 60


def test_every_declared_interaction_and_parameter_is_exercised() -> None:
    statement = {"resourceType": "CapabilityStatement", "rest": [{
        "mode": "server",
        "interaction": [{"code": "transaction"}, {"code": "search-system"}],
        "searchParam": [{"name": "_id", "type": "token"}],
        "resource": [{"type": "Patient", "interaction": [{"code": c} for c in (
            "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
            "search-type")], "searchParam": [{"name": "name", "type": "string"},
                                             {"name": "organization", "type": "reference",
                                              "definition": "http://hl7.org/fhir/SearchParameter/Patient-organization"}]},
                     {"type": "Observation", "interaction": [{"code": "search-type"}]}]}]}
    scripts = {s.resource["id"]: s.resource for s in capability_scripts(statement)}
    assert set(scripts) == {"capability-Patient", "capability-Patient-search", "capability-Observation",
                            "capability-system"}
    assert [t["id"] for t in scripts["capability-Patient"]["test"]] == [
        "read", "vread", "update", "patch", "history-instance", "history-type", "search-type", "delete"]
    assert scripts["capability-Patient"]["setup"]["action"][0]["operation"]["type"]["code"] == "create"
    params = [a["operation"]["params"] for t in scripts["capability-Patient-search"]["test"] for a in t["action"]
              if "operation" in a]
    assert params == ["?name=conformance", "?organization=Organization/capability-no-match"]
    observation = scripts["capability-Observation"]
    assert "setup" not in observation and [t["id"] for t in observation["test"]] == ["search-type"]
    assert [t["id"] for t in scripts["capability-system"]["test"]] == ["transaction", "search-system",
                                                                       "search-system-_id"]
    assert len(capability_scripts(statement, types=["Observation"], system=False)) == 1


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ({"resourceType": "OperationOutcome"}, "not a CapabilityStatement"),
        ({"resourceType": "CapabilityStatement", "rest": [{"mode": "client"}]}, "rest.mode = server"),
        ({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [{"type": "Patient"}]}]},
         "declares no Observation"),
    ],
)
def test_unusable_statements_are_errors(statement: dict[str, Any], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        capability_scripts(statement, types=["Observation"])


@pytest.mark.parametrize(
    ("code", "kind", "definition", "value"),
    [
        ("_id", "token", None, "capability-no-match"),
        ("identifier", "token", None, "http://example.org/conformance|conformance"),
        ("birthdate", "date", None, "ge2020-01-01"),
        ("probability", "number", None, "1"),
        ("value-quantity", "quantity", None, "1"),
        ("url", "uri", None, "http://example.org/conformance"),
        ("name", "string", None, "conformance"),
        ("subject", "reference", "http://hl7.org/fhir/SearchParameter/Observation-subject",
         "Group/capability-no-match"),
        ("subject", "reference", None, "capability-no-match"),
        ("code-value-quantity", "composite", "http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity",
         "conformance$1"),
        ("near", "special", None, "0|0|1|km"),
    ],
)
def test_search_values(code: str, kind: str, definition: str | None, value: str) -> None:
    assert search_value(code, kind, definition) == value


def test_minimal_resources_are_valid_for_every_type() -> None:
    validator = full_validator()
    invalid = {}
    for type_name in sorted(core().resource_types):
        issues = validator.validate(minimal_resource(type_name))
        errors = [i.message for i in issues if i.severity in ("error", "fatal")]
        if errors:
            invalid[type_name] = errors
    assert invalid == {}
    with pytest.raises(KeyError):
        minimal_resource("NoSuchType")


# -- a server that declares what it does badly


async def _declaring(request: Request) -> Response:
    statement = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
                 "format": ["json"], "rest": [{"mode": "server", "interaction": [{"code": "history-system"}],
                                               "resource": [{
                                                   "type": "Patient",
                                                   "interaction": [{"code": c} for c in (
                                                       "read", "create", "search-type", "history-type")],
                                                   "searchParam": [{"name": "name", "type": "string"},
                                                                   {"name": "birthdate", "type": "date"}]}]}]}
    return Response(orjson.dumps(statement), media_type="application/fhir+json")


DECLARING = Starlette(routes=[Route("/fhir/metadata", _declaring),
                              *(r for r in broken.BROKEN.routes if getattr(r, "path", "") != "/fhir/metadata")])


async def test_declared_but_broken_is_reported() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=DECLARING)) as client:
        scripts = await generate(client, broken.BASE)
        results = {s.resource["id"]: await run_script(s, client, RunOptions(base_url=broken.BASE)) for s in scripts}
    assert not any(r.passed for r in results.values())
    searches = {t.id: t for t in results["capability-Patient-search"].tests}
    assert {t.outcome for t in searches.values()} == {"fail"}  # a collection Bundle, not a searchset
    assert set(searches) == {"search-name", "search-birthdate"}
    instance = results["capability-Patient"]
    assert any(a.outcome == "fail" and "'201'" in a.message for a in instance.setup)  # create answers 200
    assert {t.outcome for t in instance.tests} == {"skip"}
    system = {t.id: t.outcome for t in results["capability-system"].tests}
    assert system == {"history-system": "fail"}  # declared, not routed: 404


async def test_an_unreadable_statement_is_an_error() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=[]))) as client:
        with pytest.raises(ScriptError, match="404"):
            await generate(client, broken.BASE)


async def test_read_only_declarations_use_an_existing_resource(store: Store) -> None:
    """Without create/update the instance interactions read what a search finds; nothing found: skipped."""
    read_only = [{"code": c} for c in ("read", "vread", "history-instance", "search-type")]
    async with make_client(store) as client:
        created = await client.post(f"{BASE}/Patient", content=orjson.dumps({"resourceType": "Patient"}),
                                    headers={"Content-Type": "application/fhir+json"})
        assert created.status_code == 201
        statement = {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
            {"type": "Patient", "interaction": read_only}, {"type": "DeviceMetric", "interaction": read_only}]}]}
        scripts = capability_scripts(statement, system=False)
        results = {s.resource["id"]: await run_script(s, client, RunOptions(base_url=BASE)) for s in scripts}
    patient, empty = results["capability-Patient"], results["capability-DeviceMetric"]
    assert [t.id for t in patient.tests] == ["read", "vread", "history-instance", "search-type"]
    assert _problems([patient]) == []
    assert {t.outcome for t in empty.tests if t.id != "search-type"} == {"skip"} and empty.passed
    assert "holds no DeviceMetric" in empty.tests[0].actions[0].message
