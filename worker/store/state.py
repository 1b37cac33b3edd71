"""Compact per-source state store: listing bookkeeping, stored enrollments, absence sweep.

The bucket layout (worker.store.buckets) lives entirely in here: callers speak in enrollment ids,
states and stored histories (codec.Stored); the encoding stays inside. A poll hands each page
over as id -> encoded state key and gets back only what changed, decoded (`changed`); it hands
back what to keep (`keep`) and the store encodes it. The ids it sees are kept for the absence
sweep (`sweep`, worker/store/sweep.py) on the way. A store serves one poll; it learns the
layout at its first read and grows it by splitting buckets inside the poll's own page commits.

Values are byte strings held one character per byte (worker/store/codec.py). In Redis the store
keeps what many enrollments repeat once, in the source's dictionary of names
(worker/store/names.py). Reads hand values back with their head in place, so
`codec.unchanged` compares them to a state key as they are.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from importlib.resources import files
from itertools import compress, repeat
from operator import is_not
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from worker.store import buckets, codec, growth, keys, legacy_state, unseen
from worker.store import sweep as absence_sweep
from worker.store.batch import Batch
from worker.store.codec import Stored
from worker.store.listing_meta import BEGIN_LISTING_FUNCTION as BEGIN_LISTING_FUNCTION
from worker.store.listing_meta import ListingMeta as ListingMeta
from worker.store.listing_meta import new_incarnation as new_incarnation
from worker.store.lua import Script
from worker.store.names import MAX_NAMES as MAX_NAMES  # re-exported: tests and tools read them
from worker.store.names import NAMES_BASE as NAMES_BASE
from worker.store.names import NAMES_PER as NAMES_PER
from worker.store.names import Names
from worker.store.redis_io import awaited
from worker.store.seen import SeenIds
from worker.store.sweep import SWEEP_MEMO, Swept

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
_LOAD = Script(files("worker.store").joinpath("load_page.lua").read_text())
# load_page.lua reads each id's masked hash in four bytes.
if array("I").itemsize != 4:
    raise ImportError("worker.store.state needs 4-byte C unsigned ints")
_SAME_KEPT = 4096


class Changes:
    """What a page changed, in the store's answer: each changed enrollment's stored state,
    decoded (None: nothing stored under its id)."""

    __slots__ = ("known", "quiet")

    def __init__(self) -> None:
        self.known: dict[str, Stored | None] = {}
        # Of those, the ones stored with the very state listed and no tombstone: nothing about
        # them is news, only their stored value needs a rewrite (codec.same_state).
        self.quiet: set[str] = set()


class StateStore:
    def __init__(self, redis: Redis, *, source: str) -> None:
        self._redis = redis
        self._source = source
        self._meta = keys.meta(source)
        self._counts = keys.state_counts(source)
        self._prefix = keys.state_bucket_prefix(source)  # for load_page.lua
        self._bucket_count: int | None = None  # learnt at the first load
        self._tracked = 0
        self._tombstones = 0
        self._growth: growth.Growth | None = None
        # Upgrades: enrollments still in the old layout, moved as they are met (legacy_state).
        self._legacy = False
        self._carried: dict[str, str] = {}  # met by the last load, moved by the next commit
        self._legacy_done = False
        # The dictionary of names (worker/store/names.py), learnt with the layout.
        self._names = Names(keys.state_names(source), source=source)
        self._same: dict[tuple[str | None, str], bool] = {}  # (stored value, state) -> unchanged
        self._opened = False  # the layout was read as the poll opened (`opened`)
        # A source that fits one bucket, read whole as the poll opened: its pages are looked
        # up here, not in Redis, until this poll writes to it (`_first_bucket`).
        self._whole: dict[bytes, bytes] | None = None
        self.sweep_memo: str | None = None  # worker/store/sweep.py's, read with the layout

    @property
    def source(self) -> str:
        return self._source

    @property
    def tombstones(self) -> int:
        return self._tombstones

    @property
    def upgrading(self) -> bool:
        """Some enrollments are still in the old layout (see legacy_state)."""
        return self._legacy

    async def tracked(self) -> int:
        if self._opened:  # nothing but this store's commits changes it while a poll runs
            return self._tracked
        return int(await awaited(self._redis.hget(self._meta, "tracked")) or 0)

    def _key(self, bucket: int) -> str:
        return keys.state_bucket(self._source, bucket)

    async def _layout(self, *, names: bool = True) -> tuple[int, int]:
        """(bucket count, tracked) as committed; notices state left in the old layout. With
        `names`, reads the source's names too."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self.queue_layout(pipe, names=names)
            return self._learn_layout(await pipe.execute(), names=names)

    def queue_layout(self, pipe: Pipeline, *, names: bool = True) -> None:
        """The layout reads (see `_layout`), queued on a caller's pipeline."""
        pipe.hmget(
            self._meta, ["buckets", "tracked", legacy_state.MIGRATING, "tombstones", SWEEP_MEMO]
        )
        pipe.exists(self._counts)
        if names:
            pipe.hgetall(self._names.key)

    def queue_opening(self, pipe: Pipeline) -> None:
        """What a poll reads of the store as it opens, queued on its pipeline (`opened` takes
        the replies): the layout, and bucket 0 whole. Most sources hold a few dozen
        enrollments, all in bucket 0: their pages then cost no round trip of their own. For a
        larger source it is one of its buckets (about 48 enrollments), read for nothing."""
        self.queue_layout(pipe)
        pipe.execute_command("HGETALL", self._key(0), NEVER_DECODE=True)

    def opened(self, replies: list[Any]) -> None:
        """Takes in the replies of `queue_opening` read as a poll opened, under its lease: this
        poll's commits are then the only writes, so the sweep needs no second look."""
        *layout, first_bucket = replies
        self._bucket_count, self._tracked = self._learn_layout(layout, names=True)
        self._opened = True
        self._whole = first_bucket if self._bucket_count == 1 else None

    def _learn_layout(self, replies: list[Any], *, names: bool) -> tuple[int, int]:
        (bucket_count, tracked, migrating, tombstones, memo), counted, *found = replies
        # Tombstones (codec `g`) are stored fields but not tracked enrollments.
        self._tombstones = int(tombstones or 0)
        self.sweep_memo = memo
        # Enrollments tracked but never counted were stored by a version before the counts.
        self._legacy = migrating == "1" or (int(tracked or 0) > 0 and not counted)
        if names:
            empty = not counted and not tracked and not self._tombstones and not self._legacy
            self._names.learn(found[0], empty=empty)
        return int(bucket_count or 1), int(tracked or 0)

    def decode(self, value: str, *, enrollment_id: str) -> Stored:
        """A value returned by `load`, decoded (its names resolved)."""
        return codec.decode(value, enrollment_id=enrollment_id, names=self._names.names)

    async def load(self, enrollment_ids: Iterable[str]) -> dict[str, str]:
        """Stored values (still encoded) of the given enrollments: one round trip, one command.

        Only when the page would outgrow the buckets does a second round trip read the buckets
        to split; their moves are written first by the next commit (see `_grow`).
        """
        ids, values = await self._values(enrollment_ids, None)
        return {i: value for i, value in zip(ids, values, strict=True) if value is not None}

    async def changed(self, current: Mapping[str, str], *, seen: SeenIds | None = None) -> Changes:
        """What a page changed: of `current` (enrollment id -> its codec.encode_state), those
        whose stored value differs, with what was stored. All of them are added to `seen` on
        the way (one hash of each id for both)."""
        ids, values = await self._values(current, seen)
        states = list(current.values())  # `_values` keeps the order it is given
        # codec.unchanged, remembered: a re-poll meets the same few (value, state) pairs.
        same = self._same
        verdicts = list(map(same.get, zip(values, states, strict=True)))
        changes = Changes()
        if verdicts.count(True) == len(verdicts):  # the usual page of a re-poll
            return changes
        known, quiet = changes.known, changes.quiet
        # The few ids not known unchanged, found in C: a page holds a thousand.
        for at in compress(range(len(ids)), map(is_not, verdicts, repeat(True))):
            enrollment_id, value, state, unchanged = ids[at], values[at], states[at], verdicts[at]
            if value is None:
                known[enrollment_id] = None
                continue
            if unchanged is None:
                unchanged = codec.unchanged(value, state)
                if len(same) < _SAME_KEPT:
                    same[value, state] = unchanged
            if not unchanged:
                # (An empty value, never written, counts as nothing stored, as it always has.)
                known[enrollment_id] = (
                    self.decode(value, enrollment_id=enrollment_id) if value else None
                )
                if codec.same_state(value, state):
                    quiet.add(enrollment_id)
        return changes

    async def _values(
        self, enrollment_ids: Iterable[str], seen: SeenIds | None
    ) -> tuple[list[str], list[str | None]]:
        """The ids, and their stored values in the same order."""
        if self._bucket_count is None:
            self._bucket_count, self._tracked = await self._layout()
        self._growth = None
        ids = list(enrollment_ids)
        if not ids:
            return [], []
        # A whole page at a time, in comprehensions: this runs for every enrollment of every poll.
        crcs = list(map(zlib.crc32, map(str.encode, ids)))  # buckets.hash_of
        if seen is not None:
            seen.extend(ids, crcs)
        values = await self._read(ids, crcs)
        self._carried = {}
        if self._legacy and None in values:
            missing = (i for i, value in zip(ids, values, strict=True) if value is None)
            # Held one character per byte, like the values read from the buckets.
            self._carried = {
                i: v.encode().decode("latin-1")
                for i, v in (await legacy_state.find(self._redis, self._source, missing)).items()
            }
            carried = self._carried.get
            values = [carried(i) if v is None else v for i, v in zip(ids, values, strict=True)]
        # Splits that keep every bucket small even if all the new ones get stored.
        self._growth = await growth.plan(
            self._redis,
            bucket_count=self._bucket_count,
            stored=self._tracked + values.count(None),
            key=self._key,
            unpack=self._names.unpack,
        )
        return ids, values

    async def _read(self, ids: list[str], crcs: list[int]) -> list[str | None]:
        """The stored value of each id (`crcs`: their buckets.hash_of), in one EVALSHA (the
        script is sent in full only if Redis does not have it yet, e.g. after a restart).
        Values come back one char per byte, in the order of `ids`.

        The script finds each id's bucket itself, from its hash masked here, and names the
        bucket's key from the bucket 0 key's prefix: naming the page's thousand buckets as
        script keys cost the client a third of a re-poll's CPU at 1M enrollments (issue 10).
        Redis wants a script's keys declared so that it can route it; every bucket carries
        the source's hash tag, so they all live in the slot of the one declared.
        """
        if self._whole is not None:
            return self._found(self._first_bucket(self._whole, ids))
        bucket_count = self._bucket_count or 1
        high = buckets.span_of(bucket_count)  # the script folds as buckets.bucket_for does
        hashes = array("I", map((high - 1).__and__, crcs))
        if sys.byteorder != "little":
            hashes.byteswap()
        head = (self._prefix, str(bucket_count), str(high >> 1), hashes.tobytes())
        joined = buckets.join_digit_ids(ids)
        if joined is not None:
            args: tuple[str | bytes, ...] = (*head, "S", joined)
        else:
            args = (*head, "L", *map(self._names.field, ids))
        values = await _LOAD.run(self._redis, (self._key(0),), args, NEVER_DECODE=True)
        return self._found(cast("list[bytes | None]", values))

    def _first_bucket(self, whole: dict[bytes, bytes], ids: list[str]) -> list[bytes | None]:
        """What load_page.lua answers for `ids` in a layout of one bucket, from that bucket as
        read whole (its fields as the script is sent them: str ones in UTF-8)."""
        fields = map(self._names.field, ids)
        return [whole.get(f if isinstance(f, bytes) else f.encode()) for f in fields]

    def _found(self, raws: list[bytes | None]) -> list[str | None]:
        """Values as read raw (bytes, or None when absent), one char per byte."""
        # A value that is a head reference alone (every value of many sources) is one lookup.
        found: list[str | None] = list(map(self._names.by_ref.get, raws))  # type: ignore[arg-type]
        if None in found:
            expand = self._names.expand_raw
            found = [
                value if value is not None or raw is None else expand(raw)
                for value, raw in zip(found, raws, strict=True)
            ]
        return found

    def _grow(self, batch: Batch) -> None:
        """What the last `load` or `unseen` read for the layout goes first into the commit that
        follows (splits, enrollments carried over from the old layout), so the writes after it
        already land in the grown layout."""
        grown, self._growth = self._growth, None
        carried, self._carried = self._carried, {}
        self._names.packing_used(batch)
        if self._legacy_done:
            # Still rewrites or forgets old-layout copies for the rest of this poll.
            batch.hdel(self._meta, legacy_state.MIGRATING)
            self._legacy_done = False
        if grown is not None:
            self._whole = None
            growth.split(batch, grown, key=self._key, counts=self._counts, meta=self._meta)
            self._bucket_count = grown.bucket_count
        if carried:
            self._carry(batch, carried)

    def _carry(self, batch: Batch, carried: dict[str, str]) -> None:
        """Old-layout enrollments met by the last load move to the sized layout."""
        for enrollment_id, value in carried.items():
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
            self._write(batch, enrollment_id, value)
        batch.hset(self._meta, legacy_state.MIGRATING, "1")

    def _place(self, enrollment_id: str) -> int:
        if self._bucket_count is None:
            raise RuntimeError("StateStore: load() or unseen() first learns the layout")
        return buckets.bucket_for(buckets.hash_of(enrollment_id), self._bucket_count)

    async def unseen(self, seen: SeenIds) -> AsyncIterator[tuple[str, Stored]]:
        """Stored enrollments a complete listing did not return.

        The stored count settles the common case of nothing missing without touching a bucket;
        otherwise worker/store/unseen.py reads only the buckets that lost members.
        """
        if self._opened and not self._legacy:
            bucket_count, tracked = self._bucket_count or 1, self._tracked
        else:  # the names are read only if a bucket has to be
            bucket_count, tracked = await self._layout(names=False)
        self._bucket_count = bucket_count
        if tracked <= seen.total():
            # Everything was seen, so every old-layout enrollment was met and carried over.
            self._legacy_done = self._legacy
            return
        found = unseen.scan(
            self._redis,
            seen,
            bucket_count=bucket_count,
            stored_fields=tracked + self._tombstones,
            check_counts=not self._legacy,
            counts_key=self._counts,
            key=self._key,
            names=self._names,
        )
        async for enrollment_id, raw in found:
            stored = self.decode(self._names.expand_raw(raw), enrollment_id=enrollment_id)
            if not stored.gone:
                yield enrollment_id, stored
        if self._legacy:
            async for enrollment_id, value in legacy_state.leftovers(self._redis, self._source):
                if not seen.has(enrollment_id):
                    stored = self.decode(value, enrollment_id=enrollment_id)
                    if not stored.gone:
                        yield enrollment_id, stored
            # Each of those is now rewritten or forgotten by the caller's commit.
            self._legacy_done = True

    async def stored(self) -> dict[str, str]:
        """Every stored enrollment's value as `codec.encode` wrote it, names resolved
        (inspection and tests; reads everything)."""
        await self._layout()
        found: dict[str, str] = {}
        async for key in self._redis.scan_iter(match=keys.state_pattern(self._source)):
            entries: dict[bytes, bytes] = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", key, NEVER_DECODE=True
            )
            found.update(
                (
                    self._names.unpack(f),
                    codec.expand_ids(self._names.expand_raw(v), self._names.names),
                )
                for f, v in entries.items()
            )
        return found

    def keep(self, batch: Batch, enrollment_id: str, stored: Stored) -> None:
        """Stores `stored` (encoded here) for the enrollment."""
        self.put(batch, enrollment_id, codec.encode_stored(stored, enrollment_id=enrollment_id))

    async def sweep(
        self, batch: Batch, seen: SeenIds, *, skipped: Collection[str], listed: int
    ) -> Swept:
        """The absence sweep of a complete listing that returned `seen` (worker/store/sweep.py):
        its writes go into `batch`, its removals come back to be announced."""
        return await absence_sweep.sweep(self, batch, seen, skipped=skipped, listed=listed)

    def put(self, batch: Batch, enrollment_id: str, value: str) -> None:
        """Stores `value` (from codec.encode) for the enrollment."""
        self._grow(batch)
        if self._legacy:
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
        self._write(batch, enrollment_id, value)

    def _write(self, batch: Batch, enrollment_id: str, value: str) -> None:
        self._whole = None  # bucket 0 as read no longer holds
        bucket = self._place(enrollment_id)
        batch.hset_counted(
            self._key(bucket),
            self._names.field(enrollment_id, batch),
            self._names.compact(batch, value, tracked=self._tracked),
            counts=self._counts,
            group=buckets.group_of(bucket),
        )

    def forget(self, batch: Batch, enrollment_id: str) -> None:
        self._grow(batch)
        self._whole = None
        if self._legacy:
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
        bucket = self._place(enrollment_id)
        batch.hdel_counted(
            self._key(bucket),
            self._names.field(enrollment_id),
            counts=self._counts,
            group=buckets.group_of(bucket),
        )

    def count(self, batch: Batch, field: str, delta: int) -> None:
        self._grow(batch)
        if field == "tracked":
            self._tracked += delta
        elif field == "tombstones":
            self._tombstones += delta
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
        # tells running daemons this was a reset, not a data loss (worker/detect/continuity.py).
        old = await awaited(self._redis.hget(self._meta, "incarnation"))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._counts)
            pipe.delete(self._names.key)
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
        self._opened = False
        self._whole = None
        return deleted
