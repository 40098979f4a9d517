"""Fixtures shared by the suites.

HTTP tests take the ``client`` fixture, which is parametrised over both stores: every behaviour is
checked on the embedded SQLite store and on MongoDB (nx-27017 unless a real mongod or
``YIDANG_TEST_MONGODB_URI`` is available). If no MongoDB server can be started the mongo-param
tests error out: CI fails, it does not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import pytest_asyncio

from server.app import create_app
from server.settings import Settings
from server.stores.base import Store
from tests.mongo_server import mongo_uri

STORES = ("sqlite", "mongo")
BASE = "http://yidang.test/fhir"


@pytest.fixture(scope="session")
def mongo_server_uri() -> Iterator[str]:
    with mongo_uri("yidang_test") as uri:
        yield uri


def database_uri(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def open_store(kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    if kind == "sqlite":
        from server.stores.sqlite import SqliteStore

        store: Store = SqliteStore(tmp_path_factory.mktemp("sqlite"))
    else:
        from server.stores.mongo import MongoStore

        base = request.getfixturevalue("mongo_server_uri")
        # YIDANG_TEST_MONGO_QUERY_FORMS=efficient|fallback forces the compiled forms (default: detected)
        forms = os.environ.get("YIDANG_TEST_MONGO_QUERY_FORMS") or None
        store = MongoStore(database_uri(base, f"t_{uuid.uuid4().hex[:12]}"), capabilities=forms)
    await store.open()
    return store


@pytest_asyncio.fixture(params=STORES, scope="module")
async def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    opened = await open_store(request.param, request, tmp_path_factory)
    yield opened
    await opened.close()


def make_client(store: Store, **settings: object) -> httpx.AsyncClient:
    app = create_app(Settings(base_url=BASE, log_requests=False, **settings), store=store)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)


@pytest_asyncio.fixture(scope="module")
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(store) as c:
        yield c


def unique(prefix: str = "t") -> str:
    """A value no other test uses, so tests sharing a module's store never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``YIDANG_REQUIRE_MONGO=1`` (CI), a run in which no MongoDB-backed test passed fails."""
    import os

    if os.environ.get("YIDANG_REQUIRE_MONGO") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = reporter.stats.get("passed", []) if reporter else []
    if not any("mongo" in report.nodeid for report in passed):
        print("\nYIDANG_REQUIRE_MONGO=1 but no MongoDB-backed test passed: failing the run")
        session.exitstatus = 1
