"""A source that fits one bucket is read whole as its poll opens: its pages are answered from
that read, exactly as Redis would answer them, until the poll writes to the source."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from worker.store import buckets, keys, lease
from worker.store.batch import Batch
from worker.store.state import StateStore

SOURCE = "first-bucket"
V = "afff\x1f3\x1f\x1fActive\x1f"
W = "afff\x1f4\x1f\x1fActive\x1f"
# Every kind of id a provider hands out: digits (Reply.io), a UUID pair (Unify), plain text,
# text outside ASCII (sent to Redis as UTF-8), a UUID alone.
IDS = [
    "5000:10048271",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301:9b2d1a4e-8c3f-4e1a-b7d2-5f6a7b8c9d0e",
    "seq-7:contact-42",
    "séq:ünïcode-é",
    "0b7e1c2a-3d4f-4a5b-8c6d-7e8f9a0b1c2d",
]


@pytest.fixture
async def held(store: Redis) -> lease.Lease:
    got = await lease.try_acquire(store, source=SOURCE, ttl_ms=60_000)
    assert got is not None
    return got


async def stored(store: Redis, held: lease.Lease, values: dict[str, str]) -> None:
    """`values` stored as a poll stores them (one page, one commit)."""
    state = StateStore(store, source=SOURCE)
    known = await state.load(values)
    batch = Batch()
    for enrollment_id, value in values.items():
        state.put(batch, enrollment_id, value)
    state.count(batch, "tracked", len(set(values) - set(known)))
    await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)


async def opened(store: Redis) -> StateStore:
    """A store as a poll's opening leaves it (worker/detect/opening.py)."""
    state = StateStore(store, source=SOURCE)
    async with store.pipeline(transaction=False) as pipe:
        state.queue_opening(pipe)
        replies: list[Any] = await pipe.execute()
    state.opened(replies)
    return state


async def page_reads(redis: Redis) -> int:
    """Page reads Redis ran (load_page.lua goes by EVALSHA; nothing else here does)."""
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_one_bucket_source_is_answered_from_its_opening_as_redis_answers(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    await stored(store, held, {i: V if n % 2 else W for n, i in enumerate(IDS)})
    assert int(await store.hget(keys.meta(SOURCE), "buckets") or 1) == 1  # type: ignore[misc]
    page = [*IDS[::-1], "9:404", "not-stored"]
    from_redis = await StateStore(store, source=SOURCE).load(page)
    assert from_redis == {i: V if n % 2 else W for n, i in enumerate(IDS)}

    state = await opened(store)
    before = await page_reads(redis)
    assert await state.load(page) == from_redis
    assert await page_reads(redis) == before  # no round trip of its own


async def test_a_write_sends_the_next_page_to_redis(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    """An id listed again after the poll changed it (a page that shifted under the listing)
    is compared with what the poll wrote, not with what the opening read."""
    await stored(store, held, dict.fromkeys(IDS, V))
    state = await opened(store)
    assert await state.load(IDS[:1]) == {IDS[0]: V}
    batch = Batch()
    state.put(batch, IDS[0], W)
    await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    before = await page_reads(redis)
    assert await state.load(IDS) == {IDS[0]: W, **dict.fromkeys(IDS[1:], V)}
    assert await page_reads(redis) == before + 1


async def test_a_source_past_one_bucket_reads_each_page_from_redis(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    ids = [f"5000:{n}" for n in range(buckets.FILL + 1)]
    await stored(store, held, dict.fromkeys(ids, V))
    assert int(await store.hget(keys.meta(SOURCE), "buckets") or 1) == 2  # type: ignore[misc]
    state = await opened(store)
    before = await page_reads(redis)
    assert await state.load(ids) == dict.fromkeys(ids, V)
    assert await page_reads(redis) == before + 1
