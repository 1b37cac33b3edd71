"""The state store on a real Redis: buckets grow with the source by splits inside page commits,
every bucket stays a small listpack, and an absence sweep reads only buckets that lost members."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from tests._text_format import text_value
from worker.enrollment import State, Status
from worker.errors import LeaseLost
from worker.store import buckets, codec, keys, lease
from worker.store.batch import Batch
from worker.store.seen import SeenIds
from worker.store.state import StateStore

SOURCE = "store-src"
PAGE = 1000
# Stored values as the codec writes them (an active enrollment at step 3, then 4).
V = "afff\x1f3\x1f\x1fActive\x1f"
W = "afff\x1f4\x1f\x1fActive\x1f"


def reply_ids(count: int, *, start: int = 0) -> list[str]:
    return [
        f"{5000 + i // 10_000}:{10_000_000 + i * 48_271 % 90_000_000}" for i in range(start, count)
    ]


async def poll(
    store: Redis, ids: list[str], value_of: Callable[[str], str], *, held: lease.Lease
) -> StateStore:
    """As the pipeline drives the store: per page, load, put what differs, count, commit."""
    state = StateStore(store, source=SOURCE)
    for first in range(0, len(ids), PAGE):
        page = ids[first : first + PAGE]
        stored = await state.load(page)
        batch = Batch()
        new = 0
        for enrollment_id in page:
            value = value_of(enrollment_id)
            if stored.get(enrollment_id) != value:
                state.put(batch, enrollment_id, value)
                new += enrollment_id not in stored
        state.count(batch, "tracked", new)
        if len(batch):
            await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    return state


@pytest.fixture
async def held(store: Redis) -> lease.Lease:
    got = await lease.try_acquire(store, source=SOURCE, ttl_ms=60_000)
    assert got is not None
    return got


async def bucket_count(store: Redis) -> int:
    return int(await store.hget(keys.meta(SOURCE), "buckets") or 1)  # type: ignore[misc]


async def calls(redis: Redis, command: str) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_buckets_grow_with_the_source_and_stay_small_listpacks(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(20_000)
    await poll(store, ids, lambda i: f"v{i}", held=held)
    count = await bucket_count(store)
    assert count == buckets.wanted_buckets(len(ids))
    # The compact encoding of a small hash: `listpack` since Redis 7, `ziplist` before.
    version = int(str((await redis.info("server"))["redis_version"]).split(".")[0])
    compact = b"listpack" if version >= 7 else b"ziplist"
    sizes = []
    for bucket in range(count):
        name = keys.state_bucket(SOURCE, bucket)
        assert await redis.object("ENCODING", name) == compact
        sizes.append(await redis.hlen(name))  # type: ignore[misc]
    assert sum(sizes) == len(ids)
    assert max(sizes) < 128
    groups = await store.hgetall(keys.state_counts(SOURCE))  # type: ignore[misc]
    by_group: dict[int, int] = {}
    for bucket, size in enumerate(sizes):
        by_group[buckets.group_of(bucket)] = by_group.get(buckets.group_of(bucket), 0) + size
    assert {int(g): int(n) for g, n in groups.items() if int(n)} == by_group
    # A fresh store (the next poll) finds every enrollment where the last commit left it.
    found = await StateStore(store, source=SOURCE).load(ids)
    assert found == {i: f"v{i}" for i in ids}


async def test_a_change_to_an_enrollment_whose_bucket_splits_in_the_same_commit_is_kept(
    store: Redis, held: lease.Lease
) -> None:
    first = reply_ids(buckets.FILL)
    await poll(store, first, lambda i: "old", held=held)
    assert await bucket_count(store) == 1
    grown = first + reply_ids(buckets.FILL * 10, start=buckets.FILL)
    await poll(store, grown, lambda i: "new", held=held)
    assert await bucket_count(store) == buckets.wanted_buckets(len(grown))
    assert await StateStore(store, source=SOURCE).stored() == {i: "new" for i in grown}


async def test_a_commit_refused_for_a_lost_lease_leaves_the_layout_as_it_was(
    store: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(buckets.FILL)
    await poll(store, ids, lambda i: "v", held=held)
    await store.set(keys.lease(SOURCE), "someone-else")
    with pytest.raises(LeaseLost):
        await poll(store, reply_ids(PAGE), lambda i: "w", held=held)
    assert await bucket_count(store) == 1
    assert await StateStore(store, source=SOURCE).stored() == {i: "v" for i in ids}


async def sweep(store: Redis, seen_ids: list[str]) -> list[str]:
    seen = SeenIds()
    for enrollment_id in seen_ids:
        seen.add(enrollment_id)
    return sorted([i async for i, _ in StateStore(store, source=SOURCE).unseen(seen)])


async def test_the_sweep_reads_only_the_buckets_that_lost_members(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(20_000)
    await poll(store, ids, lambda i: "afff\x1f3\x1f\x1fActive\x1f", held=held)
    gone = [ids[3], ids[7_777], ids[19_998]]
    await redis.config_resetstat()
    assert await sweep(store, [i for i in ids if i not in gone]) == sorted(gone)
    count = await bucket_count(store)
    lost = {buckets.bucket_for(buckets.hash_of(i), count) for i in gone}
    # The source's names (read with the layout), the group counts, the lost buckets.
    assert await calls(redis, "hgetall") == 2 + len(lost)
    # HLEN only inside the groups holding a lost member, not across every bucket.
    lost_groups = {buckets.group_of(b) for b in lost}
    assert await calls(redis, "hlen") <= len(lost_groups) * (1 << buckets.GROUP_BITS)
    assert count > 2 * (1 << buckets.GROUP_BITS)


async def test_a_complete_listing_reads_no_bucket_at_all(
    store: Redis, redis: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(5_000)
    await poll(store, ids, lambda i: "v", held=held)
    await redis.config_resetstat()
    assert await sweep(store, ids + ids[:10]) == []  # repeats across pages count once
    assert await calls(redis, "hgetall") == 0
    assert await calls(redis, "hlen") == 0


async def test_reset_forgets_every_bucket_and_the_layout(store: Redis, held: lease.Lease) -> None:
    ids = reply_ids(3_000)
    await poll(store, ids, lambda i: "v", held=held)
    await StateStore(store, source=SOURCE).reset()
    assert [k async for k in store.scan_iter(match=keys.state_pattern(SOURCE))] == []
    assert await store.exists(keys.state_counts(SOURCE)) == 0
    assert await bucket_count(store) == 1
    assert await StateStore(store, source=SOURCE).load(ids) == {}


def legacy_key(enrollment_id: str) -> str:
    """Where versions before the sized layout kept an enrollment (16,384 fixed buckets)."""
    return f"seqwatch:{{{SOURCE}}}:state:{zlib.crc32(enrollment_id.encode()) % 16384}"


async def store_the_old_way(store: Redis, ids: list[str], value: str) -> None:
    async with store.pipeline(transaction=False) as pipe:
        for enrollment_id in ids:
            pipe.hset(legacy_key(enrollment_id), enrollment_id, value)
        pipe.hset(keys.meta(SOURCE), mapping={"tracked": len(ids), "baseline": "1"})
        await pipe.execute()


async def test_enrollments_stored_by_an_earlier_version_are_carried_over_not_new(
    store: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(3_000)
    await store_the_old_way(store, ids, V)
    await poll(store, ids[:2_000], lambda i: V, held=held)  # nothing new: tracked unchanged
    assert int(await store.hget(keys.meta(SOURCE), "tracked")) == 3_000  # type: ignore[misc]
    await poll(store, ids[:2_000], lambda i: W if i == ids[5] else V, held=held)
    state = StateStore(store, source=SOURCE)
    assert await state.stored() == {i: W if i == ids[5] else V for i in ids[:2_000]}

    # The sweep of a complete listing finds the old-layout enrollments it did not see.
    gone = [i async for i, _ in state.unseen(seen_of(ids[:2_000]))]
    assert sorted(gone) == sorted(ids[2_000:])
    batch = Batch()
    for enrollment_id in gone:
        state.forget(batch, enrollment_id)
    state.count(batch, "tracked", -len(gone))
    await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    assert [k async for k in store.scan_iter(match=keys.legacy_state_pattern(SOURCE))] == []
    assert await store.hget(keys.meta(SOURCE), "migrating") is None  # type: ignore[misc]
    # From now on the sweep trusts the counts again.
    assert [i async for i, _ in StateStore(store, source=SOURCE).unseen(seen_of(ids[:1_999]))] == [
        ids[1_999]
    ]


def seen_of(ids: list[str]) -> SeenIds:
    seen = SeenIds()
    for enrollment_id in ids:
        seen.add(enrollment_id)
    return seen


async def test_a_page_larger_than_lua_can_unpack_at_once_loads_whole(
    store: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(buckets.FILL)  # one bucket
    await poll(store, ids, lambda i: V, held=held)
    page = ids + [f"9:{n}" for n in range(10_000)]  # 10,048 lookups in one bucket
    found = await StateStore(store, source=SOURCE).load(page)
    assert found == dict.fromkeys(ids, V)


async def test_a_page_read_finds_each_id_in_its_bucket_of_a_layout_past_65536(
    store: Redis, held: lease.Lease
) -> None:
    # load_page.lua places each id itself, from its hash masked to the layout: past 2**16
    # buckets the mask spans three bytes, and a masked hash past the bucket count folds down.
    bucket_total = 70_001
    ids = reply_ids(3_000)
    placed = {i: buckets.bucket_for(buckets.hash_of(i), bucket_total) for i in ids}
    assert max(placed.values()) >= 1 << 16
    assert any(zlib.crc32(i.encode()) & (1 << 17) - 1 >= bucket_total for i in ids)  # folded
    async with store.pipeline(transaction=False) as pipe:
        for enrollment_id, bucket in placed.items():
            value = V if zlib.crc32(enrollment_id.encode()) % 3 else W
            field = buckets.pack_id(enrollment_id)
            pipe.hset(keys.state_bucket(SOURCE, bucket), mapping={field: value})
        pipe.hset(keys.meta(SOURCE), mapping={"buckets": bucket_total, "tracked": len(ids)})
        pipe.hset(keys.state_counts(SOURCE), "0", str(len(ids)))
        await pipe.execute()
    page = [*ids[::2], "9:1", *ids[1::2], "9:2"]
    found = await StateStore(store, source=SOURCE).load(page)
    assert found == {i: V if zlib.crc32(i.encode()) % 3 else W for i in ids}


async def test_a_redis_that_forgot_the_load_script_still_answers_the_load(
    store: Redis, held: lease.Lease
) -> None:
    ids = reply_ids(500)
    await poll(store, ids, lambda i: V, held=held)
    await store.script_flush()  # as after a Redis restart
    assert await StateStore(store, source=SOURCE).load(ids) == dict.fromkeys(ids, V)


async def test_a_page_is_answered_in_decoded_terms_and_kept_as_given(
    store: Redis, held: lease.Lease
) -> None:
    """`changed` hands back what was stored, decoded (None: new), and which of those hold the
    listed state already (quiet: a rewrite, no news); `keep` writes what `put` of its encoding
    would."""
    step1 = State(status=Status.ACTIVE, raw_status="active", step=1)
    step2 = State(status=Status.ACTIVE, raw_status="active", step=2)
    kept = codec.Stored(state=step1, sequence_id="100", contact_id="1", life=1, rev=2, high_step=3)
    missed = codec.Stored(state=step1, sequence_id="100", contact_id="2", missed=1)
    old = codec.Stored(state=step1, sequence_id="100", contact_id="3")
    writer = StateStore(store, source=SOURCE)
    await writer.load(["100:1"])
    batch = Batch()
    writer.keep(batch, "100:1", kept)
    writer.put(batch, "100:2", codec.encode_stored(missed, enrollment_id="100:2"))
    writer.put(batch, "100:3", text_value(old, enrollment_id="100:3"))  # an older format
    writer.put(batch, "100:5", codec.encode_stored(old, enrollment_id="100:5"))
    writer.count(batch, "tracked", 4)
    await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    assert (await StateStore(store, source=SOURCE).stored())["100:1"] == codec.encode_stored(
        kept, enrollment_id="100:1"
    )

    listed = {
        "100:1": codec.encode_state(step2),  # changed
        "100:2": codec.encode_state(step1),  # same state, its miss to clear
        "100:3": codec.encode_state(step1),  # same state, in the old format
        "100:4": codec.encode_state(step1),  # new
        "100:5": codec.encode_state(step1),  # unchanged
    }
    seen = SeenIds()
    changes = await StateStore(store, source=SOURCE).changed(listed, seen=seen)
    assert changes.known == {"100:1": kept, "100:2": missed, "100:3": old, "100:4": None}
    assert changes.quiet == {"100:3"}
    assert seen.total() == 5
