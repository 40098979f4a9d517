"""Fixtures for the pure search-core tests: one registry and indexer for the session."""

from __future__ import annotations

import pytest

from server.search.index import Indexer
from server.search.registry import SearchRegistry

BASE = "http://yidang.test/fhir"


@pytest.fixture(scope="session")
def registry() -> SearchRegistry:
    return SearchRegistry()


@pytest.fixture(scope="session")
def indexer(registry: SearchRegistry) -> Indexer:
    return Indexer(registry, base_url=BASE)
