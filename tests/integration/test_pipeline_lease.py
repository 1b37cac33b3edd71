"""One poll of a source commits at a time; a stale holder can never commit past a newer one."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeout

from tests.contract.provider_replyio import ReplyioHarness
from tests.contract.providers import Sleeps
from tests.contract.test_provider_contract import ROUTES, SOURCE, drain, types
from worker.detect.pipeline import LeaseBusy, poll_source
from worker.errors import LeaseLost
from worker.store import keys, lease
from worker.store.batch import Batch
from worker.store.redis_conn import FastPackConnection, connect
from worker.store.redis_io import awaited


def now() -> datetime:
    return datetime.now(UTC)


async def test_a_second_poll_of_a_leased_source_is_refused(
    store: Redis, reply: ReplyioHarness
) -> None:
    reply.seed(3)
    runtime = reply.runtime(name=SOURCE, sleep=Sleeps())
    held = await lease.try_acquire(store, source=SOURCE, ttl_ms=60_000)
    assert held is not None
    with pytest.raises(LeaseBusy):
        await poll_source(store, runtime, routes=ROUTES, now=now)
    await lease.release(store, held)
    result = await poll_source(store, runtime, routes=ROUTES, now=now)
    assert result.enrollments == 3
    assert await store.exists(keys.lease(SOURCE)) == 0  # released after the poll


async def test_a_stale_holder_cannot_commit(store: Redis) -> None:
    stale = await lease.try_acquire(store, source=SOURCE, ttl_ms=50)
    assert stale is not None
    await store.delete(keys.lease(SOURCE))  # expired
    fresh = await lease.try_acquire(store, source=SOURCE, ttl_ms=60_000)
    assert fresh is not None
    assert int(fresh.token) > int(stale.token)
    batch = Batch()
    batch.hset(keys.meta(SOURCE), "probe", "stale")
    with pytest.raises(LeaseLost):
        await batch.commit(store, lease_key=stale.key, token=stale.token, ttl_ms=60_000)
    assert await store.hget(keys.meta(SOURCE), "probe") is None  # type: ignore[misc]
    await batch.commit(store, lease_key=fresh.key, token=fresh.token, ttl_ms=60_000)
    assert await store.hget(keys.meta(SOURCE), "probe") == "stale"  # type: ignore[misc]


async def test_a_poll_whose_lease_is_taken_over_commits_nothing_more(
    store: Redis, reply: ReplyioHarness
) -> None:
    ids = reply.seed(12)
    runtime = reply.runtime(name=SOURCE, sleep=Sleeps())
    await poll_source(store, runtime, routes=ROUTES, now=now)
    reply.finish(ids[-1])

    # Another worker takes the source over while this poll waits on page 2.
    async def steal(seconds: float) -> None:
        await store.set(keys.lease(SOURCE), "999999")

    reply.faults.add("rate_limit", path_contains=reply.listing_path, after=1, retry_after=1)
    stolen = reply.runtime(name=SOURCE, sleep=steal)
    with pytest.raises(LeaseLost):
        await poll_source(store, stolen, routes=ROUTES, now=now)
    assert await drain(store) == []
    await store.delete(keys.lease(SOURCE))
    await poll_source(store, runtime, routes=ROUTES, now=now)
    assert types(await drain(store)) == [(ids[-1], "enrollment.finished")]


async def test_the_fast_packer_speaks_the_same_protocol(store: Redis) -> None:
    assert store.connection_pool.connection_class is FastPackConnection
    # Unicode, bytes, ints, floats, empty strings and "CONFIG GET"-style names.
    await awaited(store.hset("k", mapping={"é": "ü\x1f", "n": 7, "f": 2.5, "e": ""}))
    assert await awaited(store.hgetall("k")) == {"é": "ü\x1f", "n": "7", "f": "2.5", "e": ""}
    assert await store.config_get("maxmemory-policy")  # sent as "CONFIG GET"
    assert await awaited(store.eval("return ARGV[1]", 0, "ÿ")) == "ÿ"


async def test_a_silent_redis_times_out_instead_of_hanging() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        pool = client.connection_pool
        assert pool.connection_kwargs["socket_timeout"] == 30.0
        pool.connection_kwargs["socket_timeout"] = 0.2  # the same path, faster
        with pytest.raises(RedisTimeout):
            await client.ping()
        await client.aclose()
