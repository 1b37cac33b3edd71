"""Empty and mass-removal listings are held; stale pages never re-fire old news (SPEC §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.integration._replyio_rig import (
    due_ids,
    now,
    outbox_events,
    replyio_runtime,
    small_world,
)
from worker.delivery.outbox import Route
from worker.demo.fakes.replyio import ReplyioWorld
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.ops.status import source_status
from worker.store import codec
from worker.store.state import StateStore

SOURCE = "suspect-src"
ROUTES = (
    Route(destination="all", events=("*",), sources=()),
    Route(destination="ops", events=("source.*",), sources=()),
)
TRACKED = 12


@pytest.fixture
def world() -> ReplyioWorld:
    return small_world(TRACKED)


@pytest.fixture
async def runtime(world: ReplyioWorld) -> AsyncIterator[SourceRuntime]:
    async with replyio_runtime(world, source=SOURCE, page_size=5) as rt:
        yield rt


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=now)


async def types_of(store: Redis, result: PollResult) -> list[str]:
    docs = await outbox_events(store, SOURCE)
    return sorted(str(docs[i]["type"]) for i in result.event_ids)


def set_opted_out(world: ReplyioWorld, contact: int, *, value: bool) -> None:
    world._get(100, contact)["isOptedOut"] = value  # the fake has no public "opt back in"


def remove(world: ReplyioWorld, contacts: range) -> list[dict[str, object]]:
    kept = []
    for contact in contacts:
        record = world.contact(100, contact)
        assert record is not None
        kept.append(dict(record))
        world.remove_contact(100, contact)
    return kept


def restore(world: ReplyioWorld, records: list[dict[str, object]]) -> None:
    for record in records:
        world.add_contact(100, int(str(record["contactId"])), email=str(record["email"]))


async def test_an_empty_listing_removes_nothing_and_is_announced_once(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    gone = remove(world, range(1, TRACKED + 1))  # a glitch: the listing comes back empty
    for _ in range(2):
        result = await poll(store, runtime)
        assert (result.events, result.removed, result.removals_held) == (0, 0, TRACKED)
    status = await source_status(store, SOURCE)
    assert status.removals_held is not None
    assert (status.removals_held["absent"], status.removals_held["tracked"]) == (TRACKED, TRACKED)
    assert status.tracked == TRACKED
    [notice_id] = await due_ids(store, SOURCE, "ops")  # once per episode, opt-in only
    assert await due_ids(store, SOURCE, "all") == []
    notice = (await outbox_events(store, SOURCE))[notice_id]
    assert notice["type"] == "source.removals_held"
    assert notice["data"]["absent"] == TRACKED  # type: ignore[index]

    restore(world, gone)  # recovery: no flood of enrolled (or removed) events
    result = await poll(store, runtime)
    assert (result.events, result.removals_held) == (0, 0)
    assert (await source_status(store, SOURCE)).removals_held is None
    assert (await poll(store, runtime)).events == 0


async def test_three_agreeing_suspect_listings_do_remove(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    gone = remove(world, range(1, TRACKED + 1))
    assert (await poll(store, runtime)).events == 0
    assert (await poll(store, runtime)).events == 0
    third = await poll(store, runtime)
    assert await types_of(store, third) == ["enrollment.removed"] * TRACKED
    assert third.removals_held == 0
    assert (await source_status(store, SOURCE)).removals_held is None
    restore(world, gone)  # they really were gone: coming back is a new enrollment
    back = await poll(store, runtime)
    assert await types_of(store, back) == ["enrollment.enrolled"] * TRACKED


async def test_more_than_half_missing_is_held_but_a_few_are_removed_as_usual(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    for contact in range(TRACKED + 1, 21):
        world.add_contact(100, contact, email=f"c{contact}@example.com")
    await poll(store, runtime)  # 20 tracked
    few = remove(world, range(1, 4))  # 3 of 20: the usual two listings
    assert (await poll(store, runtime)).events == 0
    result = await poll(store, runtime)
    assert await types_of(store, result) == ["enrollment.removed"] * 3
    assert few

    remove(world, range(4, 15))  # 11 of the 17 left: suspect
    for _ in range(2):
        held = await poll(store, runtime)
        assert (held.events, held.removals_held) == (0, 11)
    assert len(await due_ids(store, SOURCE, "ops")) == 1


async def test_a_small_source_listing_nothing_is_held_too(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    remove(world, range(4, TRACKED + 1))
    await poll(store, runtime)  # 3 tracked
    remove(world, range(1, 4))
    for _ in range(2):
        assert (await poll(store, runtime)).removals_held == 3
    assert (await poll(store, runtime)).removed == 3  # the third agreeing listing


async def test_a_stale_step_or_flag_is_stored_but_its_return_is_silent(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    world.advance_step(100, 1)  # 1 -> 2
    world.opt_out(100, 2)
    first = await poll(store, runtime)
    assert await types_of(store, first) == ["enrollment.opted_out", "enrollment.step_advanced"]

    world.advance_step(100, 1, by=-1)  # one stale page: the step back, the flag false
    set_opted_out(world, 2, value=False)
    stale = await poll(store, runtime)
    assert (stale.events, stale.enrollments) == (0, TRACKED)
    stored = await StateStore(store, source=SOURCE).load(["100:1", "100:2"])
    assert codec.decode(stored["100:1"], enrollment_id="100:1").state.step == 1  # stored
    assert codec.decode(stored["100:2"], enrollment_id="100:2").state.opted_out is False
    world.advance_step(100, 1)  # the next good page
    set_opted_out(world, 2, value=True)
    assert (await poll(store, runtime)).events == 0
    world.advance_step(100, 1)  # above the highest step seen: news
    advanced = await poll(store, runtime)
    [event_id] = advanced.event_ids
    doc = (await outbox_events(store, SOURCE))[event_id]
    assert doc["type"] == "enrollment.step_advanced"
    assert doc["data"]["previous"]["step"] == 2  # type: ignore[index]
    assert doc["data"]["current"]["step"] == 3  # type: ignore[index]
