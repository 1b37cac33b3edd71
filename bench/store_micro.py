"""`python -m bench.store_micro`: the state store's own costs, before and after, side by side.

Client CPU of the three store paths the issue measured, each against a fresh redis-server and
with the earlier design re-enacted on the same data:
- reading 1,000 pipelined replies: redis-py's timer around every reply vs one per socket read;
- loading a page of 1,000 ids: one HMGET per fixed bucket (16,384) vs one EVALSHA over the
  sized buckets;
- the absence sweep of a 1k source with one enrollment missing: HLEN of every fixed bucket vs
  the group counts and the buckets of the groups that lost members.
Figures are the best of a few rounds (the box is shared); they are not a test.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from bench.procs import RedisBox
from worker.store import lease
from worker.store.batch import Batch
from worker.store.redis_conn import FastPackConnection, connect
from worker.store.seen import SeenIds
from worker.store.state import StateStore

OLD_BUCKETS = 16_384
VALUE = "afff\x1f3\x1f\x1fActive\x1f"
ROUNDS = 5


class PerReplyTimerConnection(FastPackConnection):
    """The connection before: redis-py's read_response, a timer around every reply."""

    read_response = Connection.read_response


def reply_ids(count: int) -> list[str]:
    return [f"{5000 + i // 10_000}:{10_000_000 + i * 48_271 % 90_000_000}" for i in range(count)]


async def best_cpu_us(work: Callable[[], Awaitable[None]], per: int) -> float:
    """Least process CPU of ROUNDS runs, in µs per unit of `per`."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        await work()
        best = min(best, time.process_time() - started)
    return best * 1e6 / per


async def replies(url: str) -> tuple[float, float]:
    figures = []
    for connection_class in (PerReplyTimerConnection, FastPackConnection):
        redis = connect(url)
        redis.connection_pool.connection_class = connection_class
        await redis.set("k", "v")

        async def pipeline_of_1000(r: Redis = redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for _ in range(1000):
                    pipe.get("k")
                await pipe.execute()

        figures.append(await best_cpu_us(pipeline_of_1000, 1000))
        await redis.aclose()
    return figures[0], figures[1]


async def fill(redis: Redis, source: str, ids: list[str]) -> None:
    """Both layouts hold the same enrollments: the old fixed buckets and the sized ones."""
    async with redis.pipeline(transaction=False) as pipe:
        for enrollment_id in ids:
            bucket = zlib.crc32(enrollment_id.encode()) % OLD_BUCKETS
            pipe.hset(f"old:{{{source}}}:state:{bucket}", enrollment_id, VALUE)
        await pipe.execute()
    held = await lease.try_acquire(redis, source=source, ttl_ms=600_000)
    assert held is not None
    store = StateStore(redis, source=source)
    for first in range(0, len(ids), 1000):
        page = ids[first : first + 1000]
        stored = await store.load(page)
        batch = Batch()
        for enrollment_id in page:
            store.put(batch, enrollment_id, VALUE)
        store.count(batch, "tracked", len(page) - len(stored))
        await batch.commit(redis, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    await lease.release(redis, held)


async def old_load(redis: Redis, source: str, page: list[str]) -> None:
    by_bucket: dict[int, list[str]] = {}
    for enrollment_id in page:
        by_bucket.setdefault(zlib.crc32(enrollment_id.encode()) % OLD_BUCKETS, []).append(
            enrollment_id
        )
    async with redis.pipeline(transaction=False) as pipe:
        for bucket, members in by_bucket.items():
            pipe.hmget(f"old:{{{source}}}:state:{bucket}", members)
        await pipe.execute()


async def loads(url: str, size: int) -> tuple[float, float]:
    redis = connect(url)
    ids = reply_ids(size)
    await fill(redis, "load", ids)
    pages = [ids[f : f + 1000] for f in range(0, size, 1000)]

    async def before() -> None:
        for page in pages:
            await old_load(redis, "load", page)

    async def after() -> None:
        store = StateStore(redis, source="load")
        for page in pages:
            await store.load(page)

    figures = (await best_cpu_us(before, size), await best_cpu_us(after, size))
    await redis.aclose()
    return figures


async def sweeps(url: str) -> tuple[float, float]:
    redis = connect(url)
    ids = reply_ids(1000)
    await fill(redis, "sweep", ids)
    seen = SeenIds()
    for enrollment_id in ids[1:]:
        seen.add(enrollment_id)

    async def before() -> None:  # the sweep as it was: HLEN of every fixed bucket
        for start in range(0, OLD_BUCKETS, 128):
            async with redis.pipeline(transaction=False) as pipe:
                for bucket in range(start, start + 128):
                    pipe.hlen(f"old:{{sweep}}:state:{bucket}")
                await pipe.execute()
        await redis.hgetall(f"old:{{sweep}}:state:{zlib.crc32(ids[0].encode()) % OLD_BUCKETS}")  # type: ignore[misc]

    async def after() -> None:
        missing = [i async for i, _ in StateStore(redis, source="sweep").unseen(seen)]
        assert missing == [ids[0]]

    figures = (await best_cpu_us(before, 1), await best_cpu_us(after, 1))
    await redis.aclose()
    return figures


async def run(url: str, size: int) -> None:
    old, new = await replies(url)
    print(f"1,000 pipelined replies: {old:.2f} -> {new:.2f} µs client CPU per reply")
    old, new = await loads(url, size)
    print(
        f"load, {size} ids in pages of 1,000: {old:.2f} -> {new:.2f} µs client CPU per id "
        "(one HMGET per fixed bucket -> one EVALSHA per page)"
    )
    old, new = await sweeps(url)
    print(
        f"absence sweep, 1k source, 1 missing: {old / 1000:.1f} -> {new / 1000:.2f} ms client CPU "
        "(HLEN of 16,384 buckets -> group counts + the lost buckets)"
    )


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with (
        tempfile.TemporaryDirectory(prefix="seqwatch-micro-") as scratch,
        RedisBox(Path(scratch)) as box,
    ):
        asyncio.run(run(box.url, size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
