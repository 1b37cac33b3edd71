"""Compact per-source state store: listing bookkeeping, stored enrollments, absence sweep.

The bucket layout (worker.store.buckets) lives entirely in here: callers speak in enrollment ids and
encoded values. A poll hands each page over as id -> encoded state and gets back only what
changed (`changed`); the ids it sees are kept for the sweep on the way. A store serves one
poll; it learns the layout at its first read and grows it by splitting buckets inside the
poll's own page commits.

Values are byte strings held one character per byte (worker/store/codec.py). In Redis the store
keeps what many enrollments repeat once, in the source's dictionary of names
(keys.state_names), and refers to it by index: the sequence ids and contact types values
carry, the head of each value (state key, history byte, sequence: see `codec.head_end`), and
the sequence part of `<uuid>:<uuid>` ids. Reads hand values back with their head in place,
so `codec.unchanged` compares them to a state key as they are. The dictionary is append-only,
read with the layout (no extra round trip), and a name is written in the same atomic commit as
every value or field that first refers to it, so no snapshot refers to a missing name.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import zlib
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from worker.errors import StoreError
from worker.store import buckets, codec, keys, legacy_state
from worker.store.batch import Batch
from worker.store.codec import Stored
from worker.store.redis_io import awaited
from worker.store.seen import SeenIds

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
# Names per source (loaded by every poll): heads and value ids stop being shared past
# min(MAX_NAMES, NAMES_BASE + tracked / NAMES_PER), so a small source loads a small dictionary
# and the dictionary (~30-100 B a name) costs at most a few bytes per enrollment. The sequences
# of packed pair fields are always named (a field must not depend on a cap).
MAX_NAMES = 4096
NAMES_BASE = 64
NAMES_PER = 32
_SHORT_REFS = 63  # names whose head reference is one byte (codec.head_ref)
# Names field: "2" when the source's state began with the v2 field packing (pair ids refer to
# their sequence's name, UUIDs in 16 bytes: buckets.pack_id_v2), "1" when it holds fields
# packed before (those stay as they are).
_PACKING = "packing"
# Meta field: what the last absence sweep learnt of skipped sequences (worker/detect/sweep.py).
SWEEP_MEMO = "sweep_skipped"
_LOAD_SCRIPT = files("worker.store").joinpath("load_page.lua").read_text()
_PER_READ = 0xFFFF  # fields per load_page.lua call: a position fits two bytes
_LOAD_SHA = hashlib.sha1(_LOAD_SCRIPT.encode(), usedforsecurity=False).hexdigest()
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

    @classmethod
    def from_reply(cls, reply: list[Any]) -> ListingMeta:
        """From BEGIN_LISTING_FUNCTION's reply: (generation, LISTING_FIELDS)."""
        generation, (baseline, watermark, last_full_at, incarnation, held) = reply
        return cls(
            generation=int(generation),
            baseline_done=baseline == "1",
            incarnation=incarnation,
            watermark=watermark or None,
            last_full_at=float(last_full_at) if last_full_at else None,
            removals_held=bool(held),
        )


# A listing begins: its generation number (monotonic, never reused), an incarnation if the
# source has none yet, and what the poll needs to know. A Lua function: it runs inside the
# script that opens a poll (worker/detect/opening.py), once the lease is held.
BEGIN_LISTING_FUNCTION = """
local function begin_listing(meta, fresh_incarnation)
  local generation = redis.call('HINCRBY', meta, 'generation', 1)
  redis.call('HSETNX', meta, 'incarnation', fresh_incarnation)
  return {generation, redis.call(
    'HMGET', meta, 'baseline', 'watermark', 'last_full_at', 'incarnation', 'removals_held')}
end
"""


@dataclass(frozen=True, slots=True)
class _Move:
    field: bytes
    value: bytes
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
        self._bucket_keys: list[str] = []  # `_key` of each bucket, remembered
        self._placement: list[int] = []  # see `_values`
        self._placement_for = 0  # the bucket count `_placement` is for
        self._bucket_count: int | None = None  # learnt at the first load
        self._tracked = 0
        self._tombstones = 0
        self._growth: _Growth | None = None
        # Upgrades: enrollments still in the old layout, moved as they are met (legacy_state).
        self._legacy = False
        self._carried: dict[str, str] = {}  # met by the last load, moved by the next commit
        self._legacy_done = False
        # The dictionary of names (see the module docstring), learnt with the layout.
        self._names_key = keys.state_names(source)
        self._names: dict[int, str] = {}
        self._by_ref: dict[bytes, str] = {}  # one-byte head reference -> its name
        self._index: dict[str, int] = {}
        self._next_name = 0
        self._fresh: dict[int | str, str] = {}  # not committed yet: goes with each user
        self._names_batch: Batch | None = None
        self._names_written: set[int | str] = set()
        self._v2 = False
        self._names_loaded = False
        self._same: dict[tuple[str | None, str], bool] = {}  # (stored value, state) -> unchanged
        self._opened = False  # the layout was read as the poll opened (`opened`)
        self.sweep_memo: str | None = None  # worker/detect/sweep.py's, read with the layout

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
            pipe.hgetall(self._names_key)

    def opened(self, replies: list[Any]) -> None:
        """Takes in the replies of `queue_layout` read as a poll opened, under its lease: this
        poll's commits are then the only writes, so the sweep needs no second look."""
        self._bucket_count, self._tracked = self._learn_layout(replies, names=True)
        self._opened = True

    def _learn_layout(self, replies: list[Any], *, names: bool) -> tuple[int, int]:
        (bucket_count, tracked, migrating, tombstones, memo), counted, *found = replies
        # Tombstones (codec `g`) are stored fields but not tracked enrollments.
        self._tombstones = int(tombstones or 0)
        self.sweep_memo = memo
        # Enrollments tracked but never counted were stored by a version before the counts.
        self._legacy = migrating == "1" or (int(tracked or 0) > 0 and not counted)
        if names:
            empty = not counted and not tracked and not self._tombstones and not self._legacy
            self._learn_names(found[0], empty=empty)
        return int(bucket_count or 1), int(tracked or 0)

    def _learn_names(self, stored: dict[str, str], *, empty: bool) -> None:
        self._names_loaded = True
        self._names = {int(k): v for k, v in stored.items() if k.isdigit()}
        self._index = {name: index for index, name in self._names.items()}
        self._by_ref = {
            codec.head_ref(i).encode("latin-1"): n
            for i, n in self._names.items()
            if i < _SHORT_REFS
        }
        self._next_name = max(self._names, default=-1) + 1
        self._fresh = {}
        packing = stored.get(_PACKING)
        if packing is None:  # decided once, by the first commit: v2 only from the start
            packing = "2" if empty else "1"
            self._fresh[_PACKING] = packing
        self._v2 = packing == "2"

    def _name_used(self, batch: Batch, name: int | str) -> None:
        """A fresh name goes into every batch that uses it, so it commits with its first user
        whichever batch that turns out to be."""
        if batch is not self._names_batch:
            self._names_batch, self._names_written = batch, set()
        if name in self._fresh and name not in self._names_written:
            self._names_written.add(name)
            batch.hset(self._names_key, str(name), self._fresh[name])

    def _intern(self, batch: Batch, name: str, *, capped: bool = True) -> int | None:
        index = self._index.get(name)
        if index is None:
            if capped and len(self._index) >= min(
                MAX_NAMES, NAMES_BASE + self._tracked // NAMES_PER
            ):
                return None
            index = self._next_name
            self._next_name += 1
            self._names[index] = self._fresh[index] = name
            self._index[name] = index
            if index < _SHORT_REFS:
                self._by_ref[codec.head_ref(index).encode("latin-1")] = name
        self._name_used(batch, index)
        return index

    def _field(self, enrollment_id: str, batch: Batch | None = None) -> str | bytes:
        """The hash field of an enrollment; with `batch`, a new name may be taken for it."""
        if self._v2:
            parts = buckets.pair_parts(enrollment_id)
            if parts is not None:
                sequence, contact = parts
                index = (
                    self._index.get(sequence)
                    if batch is None
                    else self._intern(batch, sequence, capped=False)
                )
                if index is not None:
                    return buckets.pack_pair_ref(index, contact)
            return buckets.pack_id_v2(enrollment_id)
        return buckets.pack_id(enrollment_id)

    def _unpack(self, field: bytes) -> str:
        if self._v2:
            return buckets.unpack_id_v2(field, self._names)
        return buckets.unpack_id(field, self._names)

    def _expand_raw(self, raw: bytes) -> str:
        head = self._by_ref.get(raw[:1])
        if head is not None:
            return head + raw[1:].decode("latin-1")
        return self._expand(raw.decode("latin-1"))

    def _expand(self, value: str) -> str:
        """A value as read from a bucket, its head (if kept in the names) put back."""
        found = codec.read_head_ref(value) if value else None
        if found is None:
            return value
        index, rest = found
        head = self._names.get(index)
        if head is None:
            raise StoreError(f"stored state of {self._source!r} refers to a missing name")
        return head + value[rest:]

    def decode(self, value: str, *, enrollment_id: str) -> Stored:
        """A value returned by `load`, decoded (its names resolved)."""
        return codec.decode(value, enrollment_id=enrollment_id, names=self._names)

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
        states = list(current.values())  # `_values` keeps the order it is given
        # codec.unchanged, remembered: a re-poll meets the same few (value, state) pairs.
        same = self._same
        verdicts = list(map(same.get, zip(values, states, strict=True)))
        if verdicts.count(True) == len(verdicts):  # the usual page of a re-poll
            return {}
        out: dict[str, str | None] = {}
        for enrollment_id, value, state, unchanged in zip(
            ids, values, states, verdicts, strict=True
        ):
            if unchanged:
                continue
            if value is None:
                out[enrollment_id] = None
                continue
            if unchanged is None:
                unchanged = codec.unchanged(value, state)
                if len(same) < _SAME_KEPT:
                    same[value, state] = unchanged
            if not unchanged:
                out[enrollment_id] = value
        return out

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
        bucket_count = self._bucket_count
        high = 1 << (bucket_count - 1).bit_length()
        if self._placement_for != bucket_count:
            # buckets.bucket_for of each value of crc & high - 1: a lookup per id, not a branch
            self._placement = [buckets.bucket_for(n, bucket_count) for n in range(high)]
            self._placement_for = bucket_count
        placed = list(map(self._placement.__getitem__, map((high - 1).__and__, crcs)))
        fields: Sequence[str | bytes] | None = buckets.pack_digit_ids(ids)
        if fields is None:
            pack = self._field if self._v2 else buckets.pack_id
            fields = [pack(enrollment_id) for enrollment_id in ids]
        values: list[str | None] = []
        for start in range(0, len(ids), _PER_READ):  # a position must fit two bytes
            end = start + _PER_READ
            values += await self._lookup(placed[start:end], fields[start:end], high=high)
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

    async def _lookup(
        self, placed: list[int], fields: Sequence[str | bytes], *, high: int
    ) -> list[str | None]:
        """The stored value of each field, in bucket `placed[i]`: one read."""
        # The buckets read, each once; each field names its bucket by position.
        position = {bucket: n for n, bucket in enumerate(dict.fromkeys(placed), 1)}
        known = self._bucket_keys
        if len(known) < high:
            known += map(self._key, range(len(known), high))
        names = [known[bucket] for bucket in position]
        return await self._read(names, array("H", map(position.__getitem__, placed)), fields)

    async def _read(
        self, names: list[str], at: array[int], fields: Sequence[str | bytes]
    ) -> list[str | None]:
        """One EVALSHA over the page's buckets (the script is sent in full only if Redis
        does not have it yet, e.g. after a restart): `at` holds each field's position in
        `names`, from 1. Values come back one char per byte, in the order of `fields`."""
        if sys.byteorder != "little":
            at.byteswap()
        args = (at.tobytes(), *fields)
        try:
            values = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", _LOAD_SHA, len(names), *names, *args, NEVER_DECODE=True
            )
        except NoScriptError:
            values = await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", _LOAD_SCRIPT, len(names), *names, *args, NEVER_DECODE=True
            )
        # A value that is a head reference alone (every value of many sources) is one lookup.
        raws = cast("list[bytes | None]", values)
        found: list[str | None] = list(map(self._by_ref.get, raws))  # type: ignore[arg-type]
        if None in found:
            expand = self._expand_raw
            found = [
                value if value is not None or raw is None else expand(raw)
                for value, raw in zip(found, raws, strict=True)
            ]
        return found

    def _moves(self, snapshots: dict[int, dict[bytes, bytes]], bucket_count: int) -> list[_Move]:
        moves = []
        for source, entries in snapshots.items():
            for field, value in entries.items():
                enrollment_id = self._unpack(field)
                target = buckets.bucket_for(buckets.hash_of(enrollment_id), bucket_count)
                if target != source:
                    moves.append(_Move(field, value, source, target))
        return moves

    def _grow(self, batch: Batch) -> None:
        """What the last `load` or `unseen` read for the layout goes first into the commit that
        follows (splits, enrollments carried over from the old layout), so the writes after it
        already land in the grown layout."""
        growth, self._growth = self._growth, None
        carried, self._carried = self._carried, {}
        if _PACKING in self._fresh:
            self._name_used(batch, _PACKING)
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
            self._write(batch, enrollment_id, value)
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
        if self._opened and not self._legacy:
            bucket_count, tracked = self._bucket_count or 1, self._tracked
        else:  # the names are read only if a bucket has to be
            bucket_count, tracked = await self._layout(names=False)
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
                    stored = self.decode(value, enrollment_id=enrollment_id)
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
            if not self._names_loaded:
                # The source holds state (it is being swept), so it is not a new one.
                self._learn_names(await awaited(self._redis.hgetall(self._names_key)), empty=False)
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
                    enrollment_id = self._unpack(field)
                    if not seen.has(enrollment_id):
                        stored = self.decode(self._expand_raw(value), enrollment_id=enrollment_id)
                        if not stored.gone:
                            yield enrollment_id, stored

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
                (self._unpack(f), codec.expand_ids(self._expand_raw(v), self._names))
                for f, v in entries.items()
            )
        return found

    def _compact(self, batch: Batch, value: str) -> bytes:
        """`value` as Redis keeps it: names by index, one byte per character."""
        value = codec.intern_ids(value, lambda name: self._intern(batch, name))
        cut = codec.head_end(value)
        if cut:
            index = self._intern(batch, value[:cut])
            if index is not None:
                value = codec.head_ref(index) + value[cut:]
        return value.encode("latin-1")

    def put(self, batch: Batch, enrollment_id: str, value: str) -> None:
        """Stores `value` (from codec.encode) for the enrollment."""
        self._grow(batch)
        if self._legacy:
            batch.hdel(legacy_state.legacy_key(self._source, enrollment_id), enrollment_id)
        self._write(batch, enrollment_id, value)

    def _write(self, batch: Batch, enrollment_id: str, value: str) -> None:
        bucket = self._place(enrollment_id)
        batch.hset_counted(
            self._key(bucket),
            self._field(enrollment_id, batch),
            self._compact(batch, value),
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
            self._field(enrollment_id),
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
            pipe.delete(self._names_key)
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
        return deleted
