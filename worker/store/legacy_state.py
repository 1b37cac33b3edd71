"""Reading the state layout of earlier versions (16,384 fixed buckets, plain id fields), so an
upgraded worker carries each stored enrollment over instead of announcing it as new.

Enrollments move to the sized layout as polls meet them (worker.store.state); a complete listing's
sweep moves or forgets whatever is left, and then the old keys are gone.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable

from redis.asyncio import Redis

from worker.store import keys
from worker.store.redis_io import awaited

LEGACY_BUCKETS = 16384
# Meta field set while enrollments may still sit in the old layout.
MIGRATING = "migrating"


def legacy_key(source: str, enrollment_id: str) -> str:
    bucket = zlib.crc32(enrollment_id.encode()) % LEGACY_BUCKETS
    return keys.legacy_state_pattern(source).removesuffix("*") + str(bucket)


async def find(redis: Redis, source: str, enrollment_ids: Iterable[str]) -> dict[str, str]:
    """Values of the given enrollments still stored in the old layout, one round trip."""
    by_key: dict[str, list[str]] = {}
    for enrollment_id in enrollment_ids:
        by_key.setdefault(legacy_key(source, enrollment_id), []).append(enrollment_id)
    if not by_key:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for name, ids in by_key.items():
            pipe.hmget(name, ids)
        replies = await pipe.execute()
    found: dict[str, str] = {}
    for ids, values in zip(by_key.values(), replies, strict=True):
        found.update((i, v) for i, v in zip(ids, values, strict=True) if v is not None)
    return found


async def leftovers(redis: Redis, source: str) -> AsyncIterator[tuple[str, str]]:
    """Every enrollment still in the old layout."""
    async for name in redis.scan_iter(match=keys.legacy_state_pattern(source), count=1000):
        entries: dict[str, str] = await awaited(redis.hgetall(name))
        for enrollment_id, value in entries.items():
            yield enrollment_id, value
