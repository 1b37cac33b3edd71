"""Upgrading over state written in the earlier fixed-bucket layout, through real polls: no
enrollment is announced as new, changes and absences are still reported, the old keys go."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from redis.asyncio import Redis

from tests._text_format import text_value
from tests.contract.provider_replyio import ReplyioHarness
from tests.contract.providers import Sleeps
from tests.contract.test_provider_contract import ROUTES, SOURCE, drain, types
from worker.detect.pipeline import poll_source
from worker.store import codec, keys
from worker.store.state import StateStore


def now() -> datetime:
    return datetime.now(UTC)


async def rewrite_in_the_old_layout(store: Redis) -> None:
    """What an earlier version left: plain ids in 16,384 fixed buckets, no counts, no layout,
    text-format values."""
    stored = await StateStore(store, source=SOURCE).stored()
    async with store.pipeline(transaction=True) as pipe:
        async for key in store.scan_iter(match=keys.state_pattern(SOURCE)):
            pipe.delete(key)
        pipe.delete(keys.state_counts(SOURCE))
        pipe.hdel(keys.meta(SOURCE), "buckets")
        for enrollment_id, value in stored.items():
            bucket = zlib.crc32(enrollment_id.encode()) % 16384
            old = text_value(
                codec.decode(value, enrollment_id=enrollment_id), enrollment_id=enrollment_id
            )
            pipe.hset(f"seqwatch:{{{SOURCE}}}:state:{bucket}", enrollment_id, old)
        await pipe.execute()


async def test_an_upgraded_worker_carries_old_state_over_and_reports_only_real_changes(
    store: Redis, reply: ReplyioHarness
) -> None:
    ids = reply.seed(120)  # several buckets' worth once carried over
    runtime = reply.runtime(name=SOURCE, sleep=Sleeps())
    await poll_source(store, runtime, routes=ROUTES, now=now)  # silent baseline
    await rewrite_in_the_old_layout(store)
    assert [k async for k in store.scan_iter(match=keys.legacy_state_pattern(SOURCE))]

    reply.finish(ids[0])
    reply.delete(ids[1])
    await poll_source(store, runtime, routes=ROUTES, now=now)
    assert types(await drain(store)) == [(ids[0], "enrollment.finished")]  # nothing "enrolled"
    await poll_source(store, runtime, routes=ROUTES, now=now)  # absent twice: removed
    assert types(await drain(store)) == [(ids[1], "enrollment.removed")]

    assert [k async for k in store.scan_iter(match=keys.legacy_state_pattern(SOURCE))] == []
    assert await store.hget(keys.meta(SOURCE), "migrating") is None  # type: ignore[misc]
    assert int(await store.hget(keys.meta(SOURCE), "tracked")) == len(ids) - 1  # type: ignore[misc]
    stored = await StateStore(store, source=SOURCE).stored()
    live = {i for i, v in stored.items() if not codec.decode(v, enrollment_id=i).gone}
    assert live == set(ids) - {ids[1]}
    assert set(stored) - live == {ids[1]}  # its tombstone: a re-enrollment is a new life
