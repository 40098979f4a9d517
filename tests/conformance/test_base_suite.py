"""The ``base`` suite (conformance/suites/base) against Yidang in-process on both stores: every
test passes (issue 6 acceptance), the suite holds at least 150 tests, and it uses only standard
FHIR REST interactions, so it can be pointed at any R4 server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conformance.runner import RunOptions, load_script, run_script
from conformance.suites import suite
from server.stores.base import Store
from tests.conftest import BASE, make_client

SCRIPTS = suite("base").scripts()
STANDARD_CODES = {"read", "vread", "update", "updateCreate", "patch", "delete", "deleteCondMultiple", "create",
                  "search", "history", "batch", "transaction", "capabilities"}


@pytest.fixture(scope="module")
async def yidang(store: Store) -> httpx.AsyncClient:
    async with make_client(store) as client:
        yield client


def test_the_suite_is_large_and_standard() -> None:
    scripts = [load_script(p).resource for p in SCRIPTS]
    assert sum(len(s["test"]) for s in scripts) >= 150
    codes = {a["operation"]["type"]["code"] for s in scripts
             for section in [s.get("setup", {}), *s["test"], s.get("teardown", {})]
             for a in section.get("action", []) if "operation" in a}
    assert codes <= STANDARD_CODES


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
async def test_yidang_passes_the_base_suite(yidang: httpx.AsyncClient, path: Path) -> None:
    result = await run_script(load_script(path), yidang, RunOptions(base_url=BASE))
    failures = [(a.detail, a.label, a.message) for a in
                result.setup + [x for t in result.tests for x in t.actions] + result.teardown if a.outcome != "pass"]
    assert result.error is None and failures == []
