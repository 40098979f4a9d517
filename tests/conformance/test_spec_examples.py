"""The six TestScript examples of the R4 specification
(http://hl7.org/fhir/R4/testscript-examples.html) against Yidang in-process, on both stores.

Two assertions cannot pass on any conforming server, and are pinned here with the reason:

- ``readtest`` R004 reads ``Patient/ID-may-not-contain-CAPITALS`` and expects 400, but ids may
  hold capitals (``[A-Za-z0-9\\-\\.]{1,64}``, http://hl7.org/fhir/R4/datatypes.html#id): the
  right answer is 404.
- ``search`` 02 asserts ``Bundle.total.toInteger() >= entry.count()``; ``Bundle.total`` is
  optional and Yidang leaves it out unless ``_total`` asks for it (search.html#total), so the
  expression is empty, not true. It passes once searchsets carry a total by default.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from conformance.runner import RunOptions, load_script, run_script
from server.stores.base import Store
from tests.conftest import BASE, make_client
from tests.paths import SAMPLES

EXAMPLES = SAMPLES / "r4-examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("TestScript-testscript-example*.json"))
SEARCH_VARIABLES = {"PatientSearchFamilyName": "Chalmers", "PatientSearchGivenName": "Peter"}
NOT_PASSABLE = {
    # the example expects 400 for an id with capitals, but R4 ids allow them ([A-Za-z0-9\-\.]{1,64}):
    # the right answer for an unknown id is 404, which is what Yidang gives
    ("TestScript-testscript-example-readtest.json", "R004"): "the HTTP status is '404'",
}

pytestmark = pytest.mark.skipif(len(SCRIPTS) != 6, reason="the shared R4 examples are not beside the repository")


@pytest.fixture(scope="module")
async def yidang(store: Store) -> httpx.AsyncClient:
    async with make_client(store) as client:
        yield client


@pytest.mark.parametrize("name", SCRIPTS)
async def test_spec_example_runs_against_yidang(yidang: httpx.AsyncClient, name: str) -> None:
    example = orjson.loads((EXAMPLES / "Patient-example.json").read_bytes())
    assert (await yidang.put("/Patient/example", json=example)).status_code in (200, 201)
    result = await run_script(load_script(EXAMPLES / name), yidang, RunOptions(base_url=BASE,
                                                                               variables=SEARCH_VARIABLES))
    assert result.error is None
    assert all(a.outcome == "pass" for a in result.setup + result.teardown), result.setup + result.teardown
    assert result.tests
    for test in result.tests:
        known = NOT_PASSABLE.get((name, test.id))
        if known is None:
            assert test.outcome == "pass", [(a.label, a.outcome, a.message) for a in test.actions]
        else:
            failed = [a for a in test.actions if a.outcome == "fail"]
            assert len(failed) == 1 and known in failed[0].message, [(a.label, a.message) for a in test.actions]
