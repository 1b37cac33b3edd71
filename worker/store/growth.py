"""Growing a source's bucket layout by splitting buckets, inside the poll's own commits.

While a page is loaded, the store asks whether storing its new enrollments would outgrow the
buckets (`plan`): if so the buckets to split are read now (only while the source grows) and
their moves are written first by the next commit (`split`), so the writes after them already
land in the grown layout. Never a stop-the-world rehash: at most
buckets.MAX_SPLITS_PER_COMMIT splits a commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from worker.store import buckets
from worker.store.batch import Batch


@dataclass(frozen=True, slots=True)
class Move:
    field: bytes
    value: bytes
    source: int
    target: int


@dataclass(frozen=True, slots=True)
class Growth:
    """Splits read at a load, written by the first commit that follows."""

    bucket_count: int
    moves: list[Move]


async def plan(
    redis: Redis,
    *,
    bucket_count: int,
    stored: int,
    key: Callable[[int], str],
    unpack: Callable[[bytes], str],
) -> Growth | None:
    """Splits that keep every bucket small with `stored` enrollments (None: none needed)."""
    wanted = min(buckets.wanted_buckets(stored), bucket_count + buckets.MAX_SPLITS_PER_COMMIT)
    if wanted <= bucket_count:
        return None
    sources = sorted(
        {buckets.split_source(b) for b in range(bucket_count, wanted)} & set(range(bucket_count))
    )
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in sources:
            pipe.execute_command("HGETALL", key(bucket), NEVER_DECODE=True)
        snapshots: list[dict[bytes, bytes]] = await pipe.execute()
    return Growth(
        bucket_count=wanted,
        moves=_moves(dict(zip(sources, snapshots, strict=True)), wanted, unpack),
    )


def _moves(
    snapshots: dict[int, dict[bytes, bytes]], bucket_count: int, unpack: Callable[[bytes], str]
) -> list[Move]:
    moves = []
    for source, entries in snapshots.items():
        for field, value in entries.items():
            enrollment_id = unpack(field)
            target = buckets.bucket_for(buckets.hash_of(enrollment_id), bucket_count)
            if target != source:
                moves.append(Move(field, value, source, target))
    return moves


def split(
    batch: Batch, growth: Growth, *, key: Callable[[int], str], counts: str, meta: str
) -> None:
    """The planned moves, then the new bucket count, into `batch`."""
    for move in growth.moves:
        batch.hdel_counted(
            key(move.source), move.field, counts=counts, group=buckets.group_of(move.source)
        )
        batch.hset_counted(
            key(move.target),
            move.field,
            move.value,
            counts=counts,
            group=buckets.group_of(move.target),
        )
    batch.hset(meta, "buckets", growth.bucket_count)
