"""Compact per-source state store: listing bookkeeping, stored enrollments, absence sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from worker import codec, keys
from worker.batch import Batch
from worker.codec import Stored

_SCAN_CHUNK = 128
_RESET_FIELDS = ("baseline", "last_complete", "watermark", "last_full_at", "tracked")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListingMeta:
    """What one poll needs to know about the source's history before it starts."""

    generation: int
    baseline_done: bool
    # Bumped whenever stored enrollments are forgotten (absence sweep, reset): an enrollment
    # stored for the first time is born in the current epoch (see codec.Stored).
    epoch: int
    last_complete: int | None
    watermark: str | None
    last_full_at: float | None


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
            pipe.hmget(
                self._meta, ["baseline", "last_complete", "watermark", "last_full_at", "epoch"]
            )
            generation, meta = await pipe.execute()
        baseline, last_complete, watermark, last_full_at, epoch = meta
        return ListingMeta(
            generation=int(generation),
            baseline_done=baseline == "1",
            epoch=int(epoch or 0),
            last_complete=int(last_complete) if last_complete else None,
            watermark=watermark or None,
            last_full_at=float(last_full_at) if last_full_at else None,
        )

    async def load(self, enrollment_ids: Iterable[str]) -> dict[str, Stored]:
        """Stored states of the given enrollments, in one round trip."""
        by_bucket: dict[int, list[str]] = {}
        for enrollment_id in enrollment_ids:
            by_bucket.setdefault(keys.bucket_of(enrollment_id), []).append(enrollment_id)
        if not by_bucket:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket, ids in by_bucket.items():
                pipe.hmget(keys.state_bucket(self._source, bucket), ids)
            replies = await pipe.execute()
        found: dict[str, Stored] = {}
        for ids, values in zip(by_bucket.values(), replies, strict=True):
            for enrollment_id, value in zip(ids, values, strict=True):
                if value is not None:
                    found[enrollment_id] = codec.decode(value, enrollment_id=enrollment_id)
        return found

    async def scan(self) -> AsyncIterator[tuple[str, Stored]]:
        """Every stored enrollment, bucket by bucket (memory bounded by one chunk)."""
        for start in range(0, keys.STATE_BUCKETS, _SCAN_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in range(start, min(start + _SCAN_CHUNK, keys.STATE_BUCKETS)):
                    pipe.hgetall(keys.state_bucket(self._source, bucket))
                replies = await pipe.execute()
            for entries in replies:
                for enrollment_id, value in entries.items():
                    yield enrollment_id, codec.decode(value, enrollment_id=enrollment_id)

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
        # Generation and epoch survive, the epoch moved on: enrollments stored after a reset are
        # new births, so their event ids never repeat earlier ones.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._meta, *_RESET_FIELDS)
            pipe.hincrby(self._meta, "epoch", 1)
            await pipe.execute()
        return deleted
