"""The compact stored format on a real Redis: values and fields refer to the source's names, a
name always commits with the values that use it, and state written in the text format by
earlier versions reads back without a false event, every provider."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tests._text_format import text_value
from tests.contract.providers import HARNESSES, ProviderHarness, Sleeps
from tests.contract.test_provider_contract import ROUTES, drain, types
from worker.detect.pipeline import poll_source
from worker.enrollment import State, Status
from worker.store import buckets, codec, keys, lease
from worker.store import state as state_store_module
from worker.store.batch import Batch
from worker.store.seen import SeenIds
from worker.store.state import StateStore

SOURCE = "contract-src"  # the contract harnesses' routes and drain use it
SEQUENCES = [str(uuid.UUID(int=k + 1, version=4)) for k in range(3)]
STEP = str(uuid.UUID(int=77, version=4))


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    h = HARNESSES[request.param]()
    h.start()
    yield h
    h.stop()


@pytest.fixture
async def held(store: Redis) -> lease.Lease:
    got = await lease.try_acquire(store, source=SOURCE, ttl_ms=60_000)
    assert got is not None
    return got


async def raw_state(store: Redis) -> dict[bytes, bytes]:
    """Every stored field and value, as bytes."""
    found: dict[bytes, bytes] = {}
    async for key in store.scan_iter(match=keys.state_pattern(SOURCE)):
        found.update(await store.execute_command("HGETALL", key, NEVER_DECODE=True))  # type: ignore[no-untyped-call]
    return found


async def rewrite_as_text(store: Redis, *, missed: frozenset[str] = frozenset()) -> dict[str, str]:
    """The stored state as the text-format version wrote it: same buckets, ids packed as it
    packed them, text values, no names; those in `missed` marked absent once. Returns the
    values as they were (as `stored()` gives them)."""
    stored = await StateStore(store, source=SOURCE).stored()
    count = int(await store.hget(keys.meta(SOURCE), "buckets") or 1)  # type: ignore[misc]
    async with store.pipeline(transaction=True) as pipe:
        async for key in store.scan_iter(match=keys.state_pattern(SOURCE)):
            pipe.delete(key)
        pipe.delete(keys.state_names(SOURCE))
        for enrollment_id, value in stored.items():
            bucket = buckets.bucket_for(buckets.hash_of(enrollment_id), count)
            known = codec.decode(value, enrollment_id=enrollment_id)
            if enrollment_id in missed:
                known = replace(known, missed=1)
            old = text_value(known, enrollment_id=enrollment_id)
            pipe.hset(keys.state_bucket(SOURCE, bucket), buckets.pack_id(enrollment_id), old)  # type: ignore[arg-type]
        await pipe.execute()
    return stored


async def test_text_format_state_reads_back_without_a_false_event(
    store: Redis, harness: ProviderHarness
) -> None:
    ids = harness.seed(25)
    runtime = harness.runtime(name=SOURCE, sleep=Sleeps())
    await poll_source(store, runtime, routes=ROUTES, now=now)  # silent baseline
    before = await rewrite_as_text(store)
    assert all(v[:1] in b"pasbfr" for v in (await raw_state(store)).values())

    result = await poll_source(store, runtime, routes=ROUTES, now=now)
    assert (result.events, await drain(store)) == (0, [])  # unchanged: nothing to say...
    assert all(v[:1] not in b"pasbfr" for v in (await raw_state(store)).values())  # ...rewritten
    assert await StateStore(store, source=SOURCE).stored() == before  # to the same content
    # The fields are the ones the text-format version packed: they are still found.
    assert set(await raw_state(store)) == {buckets.pack_id(i) for i in before}

    harness.finish(ids[0])
    harness.delete(ids[1])
    await poll_source(store, runtime, routes=ROUTES, now=now)
    assert types(await drain(store)) == [(ids[0], "enrollment.finished")]
    await poll_source(store, runtime, routes=ROUTES, now=now)  # absent twice: removed
    assert types(await drain(store)) == [(ids[1], "enrollment.removed")]
    assert (await poll_source(store, runtime, routes=ROUTES, now=now)).events == 0


async def test_a_text_format_absence_mark_is_cleared_silently_when_listed(
    store: Redis, harness: ProviderHarness
) -> None:
    ids = harness.seed(5)
    runtime = harness.runtime(name=SOURCE, sleep=Sleeps())
    await poll_source(store, runtime, routes=ROUTES, now=now)
    before = await rewrite_as_text(
        store, missed=frozenset({ids[2]})
    )  # absent once, says the old value
    await poll_source(store, runtime, routes=ROUTES, now=now)  # listed again
    assert await drain(store) == []
    assert await StateStore(store, source=SOURCE).stored() == before  # the mark is gone
    harness.delete(ids[2])
    await poll_source(store, runtime, routes=ROUTES, now=now)  # absent once (not twice)
    assert await drain(store) == []
    await poll_source(store, runtime, routes=ROUTES, now=now)
    assert types(await drain(store)) == [(ids[2], "enrollment.removed")]


def state(step: int) -> State:
    return State(status=Status.ACTIVE, raw_status="active", step=step, step_id=STEP)


def pair_id(k: int) -> str:
    return f"{SEQUENCES[k % 3]}:{uuid.UUID(int=10_000 + k, version=4)}"


async def commit(store: Redis, batch: Batch, held: lease.Lease) -> None:
    await batch.commit(store, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)


async def put_page(state_store: StateStore, ids: list[str], step: int) -> Batch:
    stored = await state_store.load(ids)
    batch = Batch()
    for enrollment_id in ids:
        sequence, _, contact = enrollment_id.partition(":")
        value = codec.encode(
            state(step), enrollment_id=enrollment_id, sequence_id=sequence, contact_id=contact
        )
        state_store.put(batch, enrollment_id, value)
    state_store.count(batch, "tracked", len(ids) - len(stored))
    return batch


async def test_pair_ids_keep_their_sequence_once_and_everything_reads_back(
    store: Redis, held: lease.Lease
) -> None:
    ids = [pair_id(k) for k in range(3_000)]
    state_store = StateStore(store, source=SOURCE)
    for first in range(0, len(ids), 1000):
        await commit(store, await put_page(state_store, ids[first : first + 1000], 2), held)
    raw = await raw_state(store)
    assert len(raw) == len(ids)
    assert {len(f) for f in raw} == {18}  # a tag, the sequence's name, the contact's 16 bytes
    assert max(len(v) for v in raw.values()) <= 2  # the head's name (and nothing else)
    assert await store.hget(keys.state_names(SOURCE), "packing") == "2"  # type: ignore[misc]
    assert await store.hlen(keys.state_names(SOURCE)) <= 10  # type: ignore[misc]

    reader = StateStore(store, source=SOURCE)
    found = await reader.load(ids)
    key = codec.encode_state(state(2))
    assert all(codec.unchanged(found[i], key) for i in ids)
    assert not any(codec.unchanged(found[i], codec.encode_state(state(3))) for i in ids)
    assert reader.decode(found[ids[7]], enrollment_id=ids[7]) == codec.Stored(
        state=state(2), sequence_id=SEQUENCES[1], contact_id=ids[7].partition(":")[2]
    )
    seen = SeenIds()
    for enrollment_id in ids[:-2]:
        seen.add(enrollment_id)
    unseen = [(i, s.contact_id) async for i, s in StateStore(store, source=SOURCE).unseen(seen)]
    assert sorted(unseen) == sorted((i, i.partition(":")[2]) for i in ids[-2:])


async def test_a_name_commits_with_every_value_that_uses_it(
    store: Redis, held: lease.Lease
) -> None:
    """A batch that uses a name not yet committed carries it, whichever batch commits first;
    one that never commits leaves nothing behind, and its names are given out again."""
    state_store = StateStore(store, source=SOURCE)
    lost = await put_page(state_store, [pair_id(0)], 2)  # takes SEQUENCES[0]'s name
    kept = await put_page(state_store, [pair_id(3)], 2)  # the same sequence, another batch
    del lost  # never committed (a crash)
    await commit(store, kept, held)
    reader = StateStore(store, source=SOURCE)
    found = await reader.load([pair_id(0), pair_id(3)])
    assert list(found) == [pair_id(3)]
    assert reader.decode(found[pair_id(3)], enrollment_id=pair_id(3)).state == state(2)

    # A store that dies after taking names: the next one takes the same indexes for others.
    dying = StateStore(store, source=SOURCE)
    await put_page(dying, [pair_id(1)], 5)
    other = StateStore(store, source=SOURCE)
    await commit(store, await put_page(other, [pair_id(2), pair_id(4)], 4), held)
    check = StateStore(store, source=SOURCE)
    found = await check.load([pair_id(k) for k in range(5)])
    assert sorted(found) == sorted([pair_id(2), pair_id(3), pair_id(4)])
    for enrollment_id, value in found.items():
        stored = check.decode(value, enrollment_id=enrollment_id)
        assert stored.sequence_id == enrollment_id.partition(":")[0]
    assert (await StateStore(store, source=SOURCE).stored()).keys() == found.keys()


async def test_past_its_share_of_names_a_value_is_kept_whole_and_still_reads_back(
    store: Redis, held: lease.Lease
) -> None:
    """Every enrollment in its own state: no head is shared, so only the first few get a name
    (a small source loads a small dictionary); the rest are stored whole."""
    ids = [f"100:{k}" for k in range(300)]
    states = {
        i: State(status=Status.ACTIVE, raw_status="Active", step=k) for k, i in enumerate(ids)
    }
    writer = StateStore(store, source=SOURCE)
    await writer.load(ids)
    batch = Batch()
    for enrollment_id in ids:
        value = codec.encode(
            states[enrollment_id], enrollment_id=enrollment_id, sequence_id="100",
            contact_id=enrollment_id[4:],
        )  # fmt: skip
        writer.put(batch, enrollment_id, value)
    writer.count(batch, "tracked", len(ids))
    await commit(store, batch, held)
    names = await store.hlen(keys.state_names(SOURCE))  # type: ignore[misc]
    assert names <= state_store_module.NAMES_BASE + 1  # + the "packing" decision
    raw = await raw_state(store)
    assert sum(len(v) <= 2 for v in raw.values()) == state_store_module.NAMES_BASE  # references
    reader = StateStore(store, source=SOURCE)
    found = await reader.load(ids)
    for enrollment_id in ids:
        assert codec.unchanged(found[enrollment_id], codec.encode_state(states[enrollment_id]))
        assert (
            reader.decode(found[enrollment_id], enrollment_id=enrollment_id).state
            == (states[enrollment_id])
        )


async def test_uuid_ids_in_16_bytes_survive_splits_and_the_sweep(
    store: Redis, held: lease.Lease
) -> None:
    """Unify's shape: UUID ids, a sequence and a person UUID in each value."""
    ids = [str(uuid.UUID(int=50_000 + k, version=4)) for k in range(3_000)]
    person = {i: str(uuid.UUID(int=90_000 + k, version=4)) for k, i in enumerate(ids)}
    unify = State(status=Status.ACTIVE, raw_status="IN_PROGRESS", replied=False, bounced=False)
    writer = StateStore(store, source=SOURCE)
    for first in range(0, len(ids), 1000):
        page = ids[first : first + 1000]
        await writer.load(page)
        batch = Batch()
        for k, enrollment_id in enumerate(page):
            value = codec.encode(
                unify, enrollment_id=enrollment_id, sequence_id=SEQUENCES[k % 3],
                contact_id=person[enrollment_id],
            )  # fmt: skip
            writer.put(batch, enrollment_id, value)
        writer.count(batch, "tracked", len(page))
        await commit(store, batch, held)
    raw = await raw_state(store)
    assert {len(f) for f in raw} == {16}
    assert {len(v) for v in raw.values()} == {17}  # the head's name and the person's UUID
    assert await store.hlen(keys.state_names(SOURCE)) <= 3 + 3 + 1  # type: ignore[misc]
    assert int(await store.hget(keys.meta(SOURCE), "buckets")) > 32  # type: ignore[misc]

    reader = StateStore(store, source=SOURCE)
    found = await reader.load(ids)
    assert all(codec.unchanged(found[i], codec.encode_state(unify)) for i in ids)
    assert reader.decode(found[ids[4]], enrollment_id=ids[4]) == codec.Stored(
        state=unify, sequence_id=SEQUENCES[1], contact_id=person[ids[4]]
    )
    seen = SeenIds()
    for enrollment_id in ids[1:]:
        seen.add(enrollment_id)
    [(missing, stored)] = [x async for x in StateStore(store, source=SOURCE).unseen(seen)]
    assert (missing, stored.sequence_id, stored.contact_id) == (
        ids[0],
        SEQUENCES[0],
        person[ids[0]],
    )
