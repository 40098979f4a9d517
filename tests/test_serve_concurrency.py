"""Concurrent writes against real ``yidang serve --workers 2`` processes, on both stores.

The in-process tests (tests/http/test_concurrency.py) race requests on one event loop; here the
same tests run over TCP against two worker processes, so the races cross processes: the embedded
store's write lock and MongoDB's compare-and-set and leases must hold between them, not just
between coroutines. Marked ``processes`` (``pytest -m processes`` runs just these).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.conftest import database_uri
from tests.http.test_concurrency import (  # noqa: F401 - collected here against the served processes
    test_concurrent_conditional_and_plain_patches_lose_nothing,
    test_concurrent_deletes_are_idempotent,
    test_concurrent_patches_and_deletes,
    test_concurrent_patches_lose_nothing,
    test_concurrent_patches_with_if_match_one_wins,
    test_concurrent_puts_all_succeed,
    test_concurrent_transactions_lose_nothing,
)
from tests.served import served as serve

pytestmark = [pytest.mark.processes, pytest.mark.slow]  # real server processes under load: CI runs it

WORKERS = 2


@pytest.fixture(scope="module", params=("sqlite", "mongo"))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``yidang serve --workers 2`` on a free port; yields its base URL once it answers."""
    work = tmp_path_factory.mktemp("serve-concurrency")
    if request.param == "sqlite":
        store = ["--data-dir", str(work / "store")]
    else:
        uri = database_uri(request.getfixturevalue("mongo_server_uri"), f"serve_{uuid.uuid4().hex[:12]}")
        store = ["--mongodb-uri", uri]
    with serve(work, "--workers", str(WORKERS), "--log-level", "warning", store_args=store) as server:
        yield server.base


@pytest_asyncio.fixture(scope="module")
async def client(served: str) -> AsyncIterator[httpx.AsyncClient]:
    """Overrides the in-process ``client``: the imported tests talk to the served processes.
    Enough connections for every request of a test to be in flight at once."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=served, timeout=60, limits=limits) as c:
        yield c
