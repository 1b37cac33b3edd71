"""Finding the stored fields a complete listing did not return, reading only what it must.

The per-group counts (kept by every commit, keys.state_counts) name the groups holding more
than was seen, one HLEN per bucket of those groups names the buckets, and only those are read:
an absence costs the buckets that lost members, not the bucket count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from worker.store import buckets
from worker.store.names import Names
from worker.store.redis_io import awaited

if TYPE_CHECKING:
    from worker.store.seen import SeenIds

_SCAN_CHUNK = 256


async def scan(
    redis: Redis,
    seen: SeenIds,
    *,
    bucket_count: int,
    stored_fields: int,
    check_counts: bool,
    counts_key: str,
    key: Callable[[int], str],
    names: Names,
) -> AsyncIterator[tuple[str, bytes]]:
    """(enrollment id, raw value) of each stored field not in `seen`, tombstones included.
    `stored_fields`: tracked + tombstones; with `check_counts`, group counts that disagree
    with it are not trusted (state older than the counts) and every bucket is read."""
    seen_buckets = seen.per_bucket(bucket_count)
    group_counts: dict[str, str] = await awaited(redis.hgetall(counts_key))
    if check_counts and sum(int(n) for n in group_counts.values()) != stored_fields:
        # Counts that disagree with the stored total (state older than the counts): trust
        # neither and look at every bucket.
        seen_buckets = None
        group_counts = {
            str(g): str(stored_fields) for g in range(buckets.group_of(bucket_count - 1) + 1)
        }
    suspects: list[int] = []
    for group_text, stored_text in group_counts.items():
        group = int(group_text)
        first = group << buckets.GROUP_BITS
        members = range(first, min(bucket_count, first + (1 << buckets.GROUP_BITS)))
        seen_in_group = (
            -1 if seen_buckets is None else sum(seen_buckets.get(bucket, 0) for bucket in members)
        )
        if int(stored_text) > seen_in_group:
            suspects += members
    for start in range(0, len(suspects), _SCAN_CHUNK):
        if not names.loaded:
            # The source holds state (it is being swept), so it is not a new one.
            names.learn(await awaited(redis.hgetall(names.key)), empty=False)
        chunk = suspects[start : start + _SCAN_CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in chunk:
                pipe.hlen(key(bucket))
            sizes = await pipe.execute()
        for bucket, size in zip(chunk, sizes, strict=True):
            if seen_buckets is not None and size <= seen_buckets.get(bucket, 0):
                continue
            entries: dict[bytes, bytes] = await redis.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", key(bucket), NEVER_DECODE=True
            )
            for field, value in entries.items():
                enrollment_id = names.unpack(field)
                if not seen.has(enrollment_id):
                    yield enrollment_id, value
