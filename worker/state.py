"""Compact per-source state store: listing bookkeeping, stored enrollments, absence sweep."""

from __future__ import annotations

import secrets
from array import array
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from worker import codec, keys
from worker.batch import Batch
from worker.codec import Stored
from worker.redis_io import awaited

_SCAN_CHUNK = 128
_RESET_FIELDS = (
    "baseline", "watermark", "last_full_at", "tracked", "quarantined", "quarantine_first",
    "removals_held", "state_lost",
)  # fmt: skip


def new_incarnation() -> str:
    """A random name for one stored history of a source (see worker/events.py)."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListingMeta:
    """What one poll needs to know about the source's history before it starts."""

    generation: int
    baseline_done: bool
    # Random, set when the source's stored history starts (first baseline, after a reset or a
    # data loss); part of every event id, so ids of one history never repeat another's.
    incarnation: str
    watermark: str | None
    last_full_at: float | None
    removals_held: bool = False


class SeenIds:
    """Which enrollments one listing returned: 8 bytes each (a hash per id, per bucket)."""

    def __init__(self) -> None:
        self._hashes: dict[int, array[int]] = {}
        self._distinct: dict[int, set[int]] = {}

    def add(self, enrollment_id: str) -> None:
        bucket = keys.bucket_of(enrollment_id)
        hashes = self._hashes.get(bucket)
        if hashes is None:
            hashes = self._hashes[bucket] = array("q")
        hashes.append(hash(enrollment_id))

    def _set(self, bucket: int) -> set[int]:
        # Built only for the buckets looked at, one at a time.
        if bucket not in self._distinct:
            self._distinct.clear()
            self._distinct[bucket] = set(self._hashes.get(bucket, ()))
        return self._distinct[bucket]

    def count(self, bucket: int) -> int:
        return len(self._set(bucket))

    def total(self) -> int:
        """Distinct enrollments seen."""
        return sum(len(set(hashes)) for hashes in self._hashes.values())

    def has(self, bucket: int, enrollment_id: str) -> bool:
        return hash(enrollment_id) in self._set(bucket)


class StateStore:
    def __init__(self, redis: Redis, *, source: str) -> None:
        self._redis = redis
        self._source = source
        self._meta = keys.meta(source)

    @property
    def source(self) -> str:
        return self._source

    async def begin_listing(self) -> ListingMeta:
        """Allocates this listing's generation number (monotonic, never reused)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._meta, "generation", 1)
            pipe.hsetnx(self._meta, "incarnation", new_incarnation())
            pipe.hmget(
                self._meta,
                ["baseline", "watermark", "last_full_at", "incarnation", "removals_held"],
            )
            generation, _, meta = await pipe.execute()
        baseline, watermark, last_full_at, incarnation, held = meta
        return ListingMeta(
            generation=int(generation),
            baseline_done=baseline == "1",
            incarnation=incarnation,
            watermark=watermark or None,
            last_full_at=float(last_full_at) if last_full_at else None,
            removals_held=bool(held),
        )

    async def tracked(self) -> int:
        return int(await awaited(self._redis.hget(self._meta, "tracked")) or 0)

    async def load(self, enrollment_ids: Iterable[str]) -> dict[str, str]:
        """Stored values (still encoded) of the given enrollments, in one round trip."""
        by_bucket: dict[int, list[str]] = {}
        for enrollment_id in enrollment_ids:
            by_bucket.setdefault(keys.bucket_of(enrollment_id), []).append(enrollment_id)
        if not by_bucket:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket, ids in by_bucket.items():
                pipe.hmget(keys.state_bucket(self._source, bucket), ids)
            replies = await pipe.execute()
        found: dict[str, str] = {}
        for ids, values in zip(by_bucket.values(), replies, strict=True):
            for enrollment_id, value in zip(ids, values, strict=True):
                if value is not None:
                    found[enrollment_id] = value
        return found

    async def unseen(self, seen: SeenIds, *, tracked: int) -> AsyncIterator[tuple[str, Stored]]:
        """Stored enrollments (not tombstones) a complete listing did not return.

        The stored count (kept in the same atomic commits as the state) settles the common case
        of nothing missing without touching a bucket; otherwise one HLEN per bucket finds the
        buckets holding more than was seen, and only those are read.
        """
        if tracked <= seen.total():
            return
        for start in range(0, keys.STATE_BUCKETS, _SCAN_CHUNK):
            buckets = range(start, min(start + _SCAN_CHUNK, keys.STATE_BUCKETS))
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.hlen(keys.state_bucket(self._source, bucket))
                sizes = await pipe.execute()
            for bucket, size in zip(buckets, sizes, strict=True):
                if size <= seen.count(bucket):
                    continue
                entries: dict[str, str] = await awaited(
                    self._redis.hgetall(keys.state_bucket(self._source, bucket))
                )
                for enrollment_id, value in entries.items():
                    if not seen.has(bucket, enrollment_id):
                        stored = codec.decode(value, enrollment_id=enrollment_id)
                        if not stored.gone:
                            yield enrollment_id, stored

    def put(self, batch: Batch, enrollment_id: str, value: str) -> None:
        batch.hset(keys.state_key(self._source, enrollment_id), enrollment_id, value)

    def forget(self, batch: Batch, enrollment_id: str) -> None:
        batch.hdel(keys.state_key(self._source, enrollment_id), enrollment_id)

    def count(self, batch: Batch, field: str, delta: int) -> None:
        if delta:
            batch.hincr(self._meta, field, delta)

    def set_meta(self, batch: Batch, field: str, value: str) -> None:
        batch.hset(self._meta, field, value)

    async def reset(self) -> int:
        """Forget the source's observed state; pending deliveries and dead letters are kept."""
        doomed = [keys.state_bucket(self._source, b) for b in range(keys.STATE_BUCKETS)]
        deleted = 0
        for start in range(0, len(doomed), 256):
            deleted += await self._redis.delete(*doomed[start : start + 256])
        # A new incarnation: ids after a reset never repeat earlier ones. `previous_incarnation`
        # tells running daemons this was a reset, not a data loss (worker/continuity.py).
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._meta, "incarnation")
            pipe.hdel(self._meta, *_RESET_FIELDS)
            pipe.delete(keys.quarantine(self._source))
            old = (await pipe.execute())[0]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._meta,
                mapping={"incarnation": new_incarnation(), "previous_incarnation": old or ""},
            )
            await pipe.execute()
        return deleted
