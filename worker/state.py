"""Compact per-source state store: listing bookkeeping, stored enrollments, absence sweep.

The bucket layout (worker.buckets) lives entirely in here: callers speak in enrollment ids and
encoded values. A poll hands each page over as id -> encoded state and gets back only what
changed (`changed`); the ids it sees are kept for the sweep on the way. A store serves one
poll; it learns the layout at its first read and grows it by splitting buckets inside the
poll's own page commits.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from worker import buckets, codec, keys, legacy_state
from worker.batch import Batch
from worker.codec import Stored
from worker.redis_io import awaited

_RESET_FIELDS = (
    "baseline",
    "watermark",
    "last_full_at",
    "tracked",
    "buckets",
    "tombstones",
    "quarantined",
    "quarantine_first",
    "removals_held",
    "state_lost",
    legacy_state.MIGRATING,
)
_SCAN_CHUNK = 256
_LOAD_SCRIPT = files("worker").joinpath("load_page.lua").read_text()
_LOAD_SHA = hashlib.sha1(_LOAD_SCRIPT.encode(), usedforsecurity=False).hexdigest()
# Ids seen by a listing are kept by hash slot; a slot maps to one bucket while the layout has at
# most 2**SLOT_BITS buckets (about 3M enrollments). Past that the sweep reads every bucket.
SLOT_BITS = 16
_SLOT_MASK = (1 << SLOT_BITS) - 1
_SAME_KEPT = 4096


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
    """Which enrollments one listing returned: 8 bytes each, kept by hash slot."""

    def __init__(self) -> None:
        self._hashes: dict[int, array[int]] = {}

    def add(self, enrollment_id: str) -> None:
        self.hashed(zlib.crc32(enrollment_id.encode()), enrollment_id)

    def hashed(self, crc: int, enrollment_id: str) -> None:
        """`add`, given the id's buckets.hash_of (the store computes it anyway)."""
        slot = crc & _SLOT_MASK
        hashes = self._hashes.get(slot)
        if hashes is None:
            hashes = self._hashes[slot] = array("q")
        hashes.append(hash(enrollment_id))

    def total(self) -> int:
        """Distinct enrollments seen."""
        return sum(len(set(hashes)) for hashes in self._hashes.values())

    def has(self, enrollment_id: str) -> bool:
        slot = buckets.hash_of(enrollment_id) & _SLOT_MASK
        return hash(enrollment_id) in self._hashes.get(slot, ())

    def per_bucket(self, bucket_count: int) -> dict[int, int] | None:
        """Distinct ids seen per bucket of a layout; None when slots no longer pin buckets."""
        if bucket_count > 1 << SLOT_BITS:
            return None
        counts: dict[int, int] = {}
        for slot, hashes in self._hashes.items():
            bucket = buckets.bucket_for(slot, bucket_count)
            counts[bucket] = counts.get(bucket, 0) + len(set(hashes))
        return counts


@dataclass(frozen=True, slots=True)
class _Move:
    field: bytes
    value: str
    source: int
    target: int


@dataclass(frozen=True, slots=True)
class _Growth:
    """Splits read at `load`, written by the first commit that follows."""

    bucket_count: int
    moves: list[_Move]


class StateStore:
    def __init__(self, redis: Redis, *, source: str) -> None:
        self._redis = redis
        self._source = source
        self._meta = keys.meta(source)
        self._counts = keys.state_counts(source)
        self._key_prefix = keys.state_bucket(source, 0).removesuffix("0")
        self._bucket_count: int | None = None  # learnt at the first load
        self._tracked = 0
        self._tombstones = 0
        self._growth: _Growth | None = None
        # Upgrades: enrollments still in the old layout, moved as they are met (legacy_state).
        self._legacy = False
        self._carried: dict[str, str] = {}  # met by the last load, moved by the next commit
        self._legacy_done = False
        self._same: dict[tuple[str, str], bool] = {}  # (stored value, state) -> unchanged

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

    def _key(self, bucket: int) -> str:
        return keys.state_bucket(self._source, bucket)

    async def _layout(self) -> tuple[int, int]:
        """(bucket count, tracked) as committed; notices state left in the old layout."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._meta, ["buckets", "tracked", legacy_state.MIGRATING, "tombstones"])
            pipe.exists(self._counts)
            (bucket_count, tracked, migrating, tombstones), counted = await pipe.execute()
        # Tombstones (codec `g`) are stored fields but not tracked enrollments.
        self._tombstones = int(tombstones or 0)
        # Enrollments tracked but never counted were stored by a version before the counts.
        self._legacy = migrating == "1" or (int(tracked or 0) > 0 and not counted)
        return int(bucket_count or 1), int(tracked or 0)

    async def load(self, enrollment_ids: Iterable[str]) -> dict[str, str]:
        """Stored values (still encoded) of the given enrollments: one round trip, one command.

        Only when the page would outgrow the buckets does a second round trip read the buckets
        to split; their moves are written first by the next commit (see `_grow`).
        """
        ids, values = await self._values(enrollment_ids, None)
        return {i: value for i, value in zip(ids, values, strict=True) if value is not None}

    async def changed(
        self, current: Mapping[str, str], *, seen: SeenIds | None = None
    ) -> dict[str, str | None]:
        """What a page changed: of `current` (enrollment id -> its codec.encode_state), those
        whose stored state differs, with their stored value (None: not stored). All of them
        are added to `seen` on the way (one hash of each id for both)."""
        ids, values = await self._values(current, seen)
        # codec.unchanged, remembered: a re-poll meets the same few (value, state) pairs.
        same = self._same
        out: dict[str, str | None] = {}
        for enrollment_id, value in zip(ids, values, strict=True):
            if value is None:
                out[enrollment_id] = None
                continue
            pair = (value, current[enrollment_id])
            unchanged = same.get(pair)
            if unchanged is None:
                unchanged = codec.unchanged(*pair)
                if len(same) < _SAME_KEPT:
                    same[pair] = unchanged
            if not unchanged:
                out[enrollment_id] = value
        return out

    async def _values(
        self, enrollment_ids: Iterable[str], seen: SeenIds | None
    ) -> tuple[list[str], list[str | None]]:
        """The ids grouped by bucket, and their stored values in the same order."""
        if self._bucket_count is None:
            self._bucket_count, self._tracked = await self._layout()
        self._growth = None
        # buckets.bucket_for, inlined: this loop runs for every enrollment of every poll.
        bucket_count = self._bucket_count
        high = 1 << (bucket_count - 1).bit_length()
        mask, half = high - 1, high >> 1
        crc32 = zlib.crc32
        # SeenIds.hashed, inlined: the seen set is kept by the same hash.
        slots = seen._hashes if seen is not None else None
        by_bucket: dict[int, list[str]] = {}
        for enrollment_id in enrollment_ids:
            crc = crc32(enrollment_id.encode())
            if slots is not None:
                hashes = slots.get(crc & _SLOT_MASK)
                if hashes is None:
                    hashes = slots[crc & _SLOT_MASK] = array("q")
                hashes.append(hash(enrollment_id))
            bucket = crc & mask
            if bucket >= bucket_count:
                bucket -= half
            members = by_bucket.get(bucket)
            if members is None:
                by_bucket[bucket] = [enrollment_id]
            else:
                members.append(enrollment_id)
        if not by_bucket:
            return [], []
        prefix = self._key_prefix
        names: list[str] = []
        args: list[str | bytes | int] = []
        pack = buckets.pack_id
        for bucket, members in by_bucket.items():
            names.append(f"{prefix}{bucket}")
            args.append(len(members))
            args += map(pack, members)
        values = await self._read(names, args)
        ids = [i for members in by_bucket.values() for i in members]
        self._carried = {}
        if self._legacy and None in values:
            missing = (i for i, value in zip(ids, values, strict=True) if value is None)
            self._carried = await legacy_state.find(self._redis, self._source, missing)
            carried = self._carried.get
            values = [carried(i) if v is None else v for i, v in zip(ids, values, strict=True)]
        await self._plan_growth(new=values.count(None))
        return ids, values

    async def _plan_growth(self, *, new: int) -> None:
        """Splits that keep every bucket small even if all of `new` get stored: their source
        buckets are read now (only while the source grows) and moved by the next commit."""
        assert self._bucket_count is not None
        bucket_count = self._bucket_count
        wanted = min(
            buckets.wanted_buckets(self._tracked + new),
            bucket_count + buckets.MAX_SPLITS_PER_COMMIT,
        )
        if wanted <= bucket_count:
            return
        sources = sorted(
            {buckets.split_source(b) for b in range(bucket_count, wanted)}
            & set(range(bucket_count))
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in sources:
                pipe.execute_command("HGETALL", self._key(bucket), NEVER_DECODE=True)
            snapshots: list[dict[bytes, bytes]] = await pipe.execute()
        self._growth = _Growth(
            bucket_count=wanted,
            moves=self._moves(dict(zip(sources, snapshots, strict=True)), wanted),
        )

    async def _read(self, names: list[str], args: list[str | bytes | int]) -> list[str | None]:
        """One EVALSHA over the page's buckets (the script is sent in full only if Redis
        does not have it yet, e.g. after a restart)."""
        try:
            return cast(
                "list[str | None]",
                await awaited(
                    self._redis.evalsha(_LOAD_SHA, len(names), *names, *cast("list[str]", args))
                ),
            )
        except NoScriptError:
            return cast(
                "list[str | None]",
                await awaited(
                    self._redis.eval(_LOAD_SCRIPT, len(names), *names, *cast("list[str]", args))
                ),
            )

    def _moves(self, snapshots: dict[int, dict[bytes, bytes]], bucket_count: int) -> list[_Move]:
        moves = []
        for source, entries in snapshots.items():
            for field, value in entries.items():
                enrollment_id = buckets.unpack_id(field)
                target = buckets.bucket_for(buckets.hash_of(enrollment_id), bucket_count)
                if target != source:
                    moves.append(_Move(field, value.decode(), source, target))
        return moves

    def _grow(self, batch: Batch) -> None:
        """What the last `load` or `unseen` read for the layout goes first into the commit that
        follows (splits, enrollments carried over from the old layout), so the writes after it
        already land in the grown layout."""
        growth, self._growth = self._growth, None
        carried, self._carried = self._carried, {}
        if self._legacy_done:
            # Still rewrites or forgets old-layout copies for the rest of this poll.
            batch.hdel(self._meta, legacy_state.MIGRATING)
            self._legacy_done = False
        if growth is not None:
            self._split(batch, growth)
        if carried:
            self._carry(batch, carried)

    def _split(self, batch: Batch, growth: _Growth) -> None:
        for move in growth.moves:
            batch.hdel_counted(
                self._key(move.source),
                move.field,
                counts=self._counts,
                group=buckets.group_of(move.source),
            )
            batch.hset_counted(
                self._key(move.target),
                move.field,
                move.value,
                counts=self._counts,
                group=buckets.group_of(move.target),
            )
        batch.hset(self._meta, "buckets", growth.bucket_count)
        self._bucket_count = growth.bucket_count

    def _carry(self, batch: Batch, carried: dict[str, str]) -> None:
        """Old-layout enrollments met by the last load move to the sized layout."""
        for enrollment_id, value in carried.items():
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
            bucket = self._place(enrollment_id)
            batch.hset_counted(
                self._key(bucket),
                buckets.pack_id(enrollment_id),
                value,
                counts=self._counts,
                group=buckets.group_of(bucket),
            )
        batch.hset(self._meta, legacy_state.MIGRATING, "1")

    def _place(self, enrollment_id: str) -> int:
        if self._bucket_count is None:
            raise RuntimeError("StateStore: load() or unseen() first learns the layout")
        return buckets.bucket_for(buckets.hash_of(enrollment_id), self._bucket_count)

    async def unseen(self, seen: SeenIds) -> AsyncIterator[tuple[str, Stored]]:
        """Stored enrollments a complete listing did not return.

        The stored count settles the common case of nothing missing without touching a bucket.
        Otherwise the per-group counts (kept by every commit) name the groups holding more than
        was seen, one HLEN per bucket of those groups names the buckets, and only those are read.
        """
        bucket_count, tracked = await self._layout()
        self._bucket_count = bucket_count
        if tracked <= seen.total():
            # Everything was seen, so every old-layout enrollment was met and carried over.
            self._legacy_done = self._legacy
            return
        async for found in self._unseen(seen, bucket_count=bucket_count, tracked=tracked):
            yield found
        if self._legacy:
            async for enrollment_id, value in legacy_state.leftovers(self._redis, self._source):
                if not seen.has(enrollment_id):
                    stored = codec.decode(value, enrollment_id=enrollment_id)
                    if not stored.gone:
                        yield enrollment_id, stored
            # Each of those is now rewritten or forgotten by the caller's commit.
            self._legacy_done = True

    async def _unseen(
        self, seen: SeenIds, *, bucket_count: int, tracked: int
    ) -> AsyncIterator[tuple[str, Stored]]:
        seen_buckets = seen.per_bucket(bucket_count)
        group_counts: dict[str, str] = await awaited(self._redis.hgetall(self._counts))
        stored_fields = tracked + self._tombstones
        if not self._legacy and sum(int(n) for n in group_counts.values()) != stored_fields:
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
                -1
                if seen_buckets is None
                else sum(seen_buckets.get(bucket, 0) for bucket in members)
            )
            if int(stored_text) > seen_in_group:
                suspects += members
        for start in range(0, len(suspects), _SCAN_CHUNK):
            chunk = suspects[start : start + _SCAN_CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in chunk:
                    pipe.hlen(self._key(bucket))
                sizes = await pipe.execute()
            for bucket, size in zip(chunk, sizes, strict=True):
                if seen_buckets is not None and size <= seen_buckets.get(bucket, 0):
                    continue
                entries: dict[bytes, bytes] = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                    "HGETALL", self._key(bucket), NEVER_DECODE=True
                )
                for field, value in entries.items():
                    enrollment_id = buckets.unpack_id(field)
                    if not seen.has(enrollment_id):
                        stored = codec.decode(value.decode(), enrollment_id=enrollment_id)
                        if not stored.gone:
                            yield enrollment_id, stored

    async def stored(self) -> dict[str, str]:
        """Every stored enrollment's encoded value (inspection and tests; reads everything)."""
        found: dict[str, str] = {}
        async for key in self._redis.scan_iter(match=keys.state_pattern(self._source)):
            entries: dict[bytes, bytes] = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", key, NEVER_DECODE=True
            )
            found.update({buckets.unpack_id(f): v.decode() for f, v in entries.items()})
        return found

    def put(self, batch: Batch, enrollment_id: str, value: str) -> None:
        self._grow(batch)
        if self._legacy:
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
        bucket = self._place(enrollment_id)
        batch.hset_counted(
            self._key(bucket),
            buckets.pack_id(enrollment_id),
            value,
            counts=self._counts,
            group=buckets.group_of(bucket),
        )

    def forget(self, batch: Batch, enrollment_id: str) -> None:
        self._grow(batch)
        if self._legacy:
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
        bucket = self._place(enrollment_id)
        batch.hdel_counted(
            self._key(bucket),
            buckets.pack_id(enrollment_id),
            counts=self._counts,
            group=buckets.group_of(bucket),
        )

    def count(self, batch: Batch, field: str, delta: int) -> None:
        self._grow(batch)
        if field == "tracked":
            self._tracked += delta
        if delta:
            batch.hincr(self._meta, field, delta)

    def set_meta(self, batch: Batch, field: str, value: str) -> None:
        self._grow(batch)
        batch.hset(self._meta, field, value)

    async def reset(self) -> int:
        """Forget the source's observed state; pending deliveries and dead letters are kept."""
        deleted = 0
        for pattern in (keys.state_pattern(self._source), keys.legacy_state_pattern(self._source)):
            doomed = [key async for key in self._redis.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(doomed), _SCAN_CHUNK):
                deleted += await self._redis.delete(*doomed[start : start + _SCAN_CHUNK])
        # A new incarnation: ids after a reset never repeat earlier ones. `previous_incarnation`
        # tells running daemons this was a reset, not a data loss (worker/continuity.py).
        old = await awaited(self._redis.hget(self._meta, "incarnation"))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._counts)
            pipe.delete(keys.quarantine(self._source))
            # What the source remembers (e.g. when it last listed archived sequences) goes too,
            # so the new baseline is a whole listing.
            pipe.delete(keys.provider_memory(self._source))
            pipe.hdel(self._meta, *_RESET_FIELDS)
            pipe.hset(
                self._meta,
                mapping={"incarnation": new_incarnation(), "previous_incarnation": old or ""},
            )
            await pipe.execute()
        self._bucket_count = None
        return deleted
