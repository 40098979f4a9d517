"""The ``regional`` suite (conformance/suites/regional, built by conformance/regional_suite.py).

Yidang passes all of it on both stores; the checked-in scripts are exactly what the builder makes
from the examples (so they cannot drift); every example and counter-example is used; a server
that does not declare ``$validate`` has those tests skipped with the reason, and one whose
``$validate`` accepts everything fails on every counter-example.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance import regional_suite
from conformance.runner import RunOptions, ScriptResult, load_script, run_script
from conformance.suites import suite
from profiles.regional import examples
from server.stores.base import Store
from tests.conftest import BASE, make_client

SCRIPTS = suite("regional").scripts()
FAKE = "http://fake.test/fhir"


@pytest.fixture(scope="module")
async def yidang(store: Store) -> httpx.AsyncClient:
    async with make_client(store) as client:
        yield client


def test_the_scripts_are_built_from_the_examples() -> None:
    built = regional_suite.build()
    assert sorted(built) == [p.name for p in SCRIPTS]
    assert all(p.read_bytes() == built[p.name] for p in SCRIPTS), "run python -m conformance.regional_suite"
    scripts = [load_script(p).resource for p in SCRIPTS]
    tests = [t["id"] for s in scripts for t in s["test"]]
    assert sum(t.startswith("validate-") for t in tests) == len(examples())
    assert sum(t.startswith("create-") for t in tests) == sum(e.valid for e in examples())
    assert all(any("validateProfileId" in a.get("assert", {}) for a in t["action"])
               for s in scripts for t in s["test"] if t["id"].startswith("create-"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
async def test_yidang_passes_the_regional_suite(yidang: httpx.AsyncClient, path: Path) -> None:
    result = await run_script(load_script(path), yidang, RunOptions(base_url=BASE))
    failures = [(a.detail, a.label, a.message) for a in
                result.setup + [x for t in result.tests for x in t.actions] + result.teardown if a.outcome != "pass"]
    assert result.error is None and failures == []


def _fake(*, validate: bool) -> Starlette:
    """A server whose $validate (if declared) accepts everything, and that stores nothing."""
    async def metadata(request: Request) -> Response:
        rest = {"mode": "server", **({"operation": [{"name": "validate", "definition": "x"}]} if validate else {})}
        return Response(orjson.dumps({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                                      "fhirVersion": "4.0.1", "format": ["json"], "rest": [rest]}),
                        media_type="application/fhir+json")

    async def accept_all(request: Request) -> Response:
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "diagnostics": "fine"}]}
        return Response(orjson.dumps(outcome), media_type="application/fhir+json")

    routes = [Route("/fhir/metadata", metadata)]
    if validate:
        routes.append(Route("/fhir/{type}/$validate", accept_all, methods=["POST"]))
    return Starlette(routes=routes)


async def _run_fake(validate: bool) -> list[ScriptResult]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_fake(validate=validate))) as client:
        return [await run_script(load_script(p), client, RunOptions(base_url=FAKE)) for p in SCRIPTS]


async def test_validate_tests_are_skipped_without_validate() -> None:
    results = await _run_fake(validate=False)
    tests = [t for r in results for t in r.tests]
    skipped = [t for t in tests if t.id.startswith("validate-")]
    assert {t.outcome for t in skipped} == {"skip"}
    assert all("does not declare $validate" in t.actions[0].message for t in skipped)
    assert {t.outcome for t in tests if t.id.startswith("create-")} == {"fail"}  # 404: nothing is stored


async def test_a_validate_that_accepts_everything_fails_every_counter_example() -> None:
    results = await _run_fake(validate=True)
    outcomes = {t.id: t.outcome for r in results for t in r.tests if t.id.startswith("validate-")}
    invalid = {k: v for k, v in outcomes.items() if "-invalid-" in k}
    assert len(invalid) == sum(not e.valid for e in examples())
    assert set(invalid.values()) == {"fail"}
    assert {v for k, v in outcomes.items() if "-invalid-" not in k} == {"pass"}
