"""Unify through the real pipeline and the fake: sequence/mailbox pauses, auto-replies, and the
switchable places where the vendor's material is silent (SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tests.contract.providers import Sleeps, UnifyHarness
from tests.contract.test_provider_contract import ROUTES, SOURCE, drain, types
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.ops.status import source_status
from worker.store.state import StateStore

MAILBOX = "rep@seller.example"  # the fake's default sending mailbox


@pytest.fixture
def unify() -> Iterator[UnifyHarness]:
    harness = UnifyHarness()
    harness.start()
    yield harness
    harness.stop()


def runtime_of(harness: UnifyHarness, *, full_sync_interval: float = 0) -> SourceRuntime:
    full = harness.runtime(name=SOURCE, sleep=Sleeps())
    return SourceRuntime(
        name=full.name,
        provider=full.provider,
        source=full.source,
        normalize=full.normalize,
        full_sync_interval=full_sync_interval,
    )


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=lambda: datetime.now(UTC))


async def test_sequence_and_mailbox_pauses_pause_the_enrollments(
    store: Redis, unify: UnifyHarness
) -> None:
    rt = runtime_of(unify)
    other_sequence = unify.world.add_sequence("Other")
    ids = unify.seed(2)
    elsewhere = unify.world.enroll(other_sequence, email="x@example.com", mailbox_email="b@s.io")
    await poll(store, rt)

    unify.clock.advance(1)
    unify.world.pause_sequence(unify.sequence)
    await poll(store, rt)
    assert types(await drain(store)) == sorted((i, "enrollment.paused") for i in ids)

    unify.clock.advance(1)
    unify.world.pause_sequence(unify.sequence, paused=False)
    await poll(store, rt)
    assert types(await drain(store)) == sorted((i, "enrollment.resumed") for i in ids)

    unify.clock.advance(1)
    unify.world.set_mailbox(MAILBOX, is_unauthorized=True)
    await poll(store, rt)
    events = await drain(store)
    assert types(events) == sorted((i, "enrollment.paused") for i in ids)
    assert {e["data"]["current"]["status"] for e in events} == {"blocked"}

    unify.clock.advance(1)
    unify.world.set_mailbox(MAILBOX, is_unauthorized=False, is_paused=True)
    await poll(store, rt)
    events = await drain(store)
    assert types(events) == sorted((i, "enrollment.status_changed") for i in ids)
    assert {e["data"]["current"]["status"] for e in events} == {"paused"}
    assert unify.world.enrollment(elsewhere)["mailbox"]["is_paused"] is False  # type: ignore[index]


@pytest.mark.parametrize("bump", [True, False])
async def test_a_sequence_pause_reaches_incremental_polls_only_if_it_bumps_updated_at(
    store: Redis, unify: UnifyHarness, bump: bool
) -> None:
    """The docs do not say whether pausing a sequence bumps its enrollments' updated_at:
    without the bump only the periodic full listing can see it."""
    unify.world.parent_changes_bump = bump
    rt = runtime_of(unify, full_sync_interval=3600)
    ids = unify.seed(2)
    unify.clock.advance(1)  # the newest record (the watermark) is in another sequence
    unify.world.enroll(unify.world.add_sequence("Other"), email="x@example.com")
    await poll(store, rt)
    unify.clock.advance(1)
    unify.world.pause_sequence(unify.sequence)
    await poll(store, rt)
    expected = sorted((i, "enrollment.paused") for i in ids)
    assert types(await drain(store)) == (expected if bump else [])
    full = runtime_of(unify, full_sync_interval=0)
    await poll(store, full)
    assert types(await drain(store)) == ([] if bump else expected)


@pytest.mark.parametrize("categories", [True, False])
async def test_auto_replies_never_fire_replied(
    store: Redis, unify: UnifyHarness, categories: bool
) -> None:
    unify.world.classification_categories = categories
    rt = runtime_of(unify)
    [auto, human] = unify.seed(2)
    await poll(store, rt)
    unify.clock.advance(1)
    unify.world.update(auto, is_replied=True, reply_category="AUTOMATED")
    unify.world.update(human, is_replied=True, reply_category="POSITIVE")
    await poll(store, rt)
    events = await drain(store)
    if categories:
        assert types(events) == [(human, "enrollment.replied")]
        stored = unify.world.enrollment(auto)
        assert stored is not None
        assert stored["reply_email_message"]["classifications"][0]["category"] == "AUTOMATED"
    else:
        # The docs example's classifications carry no category: a reply is a reply.
        assert types(events) == sorted(
            [(auto, "enrollment.replied"), (human, "enrollment.replied")]
        )


async def test_an_auto_reply_then_a_human_reply_fires_once(
    store: Redis, unify: UnifyHarness
) -> None:
    rt = runtime_of(unify)
    [one] = unify.seed(1)
    await poll(store, rt)
    unify.clock.advance(1)
    unify.world.update(one, is_replied=True, reply_category="AUTOMATED")
    await poll(store, rt)
    assert await drain(store) == []
    unify.clock.advance(1)
    unify.world.update(
        one,
        reply_email_message={
            "id": "5d9a3f4e-0000-4000-8000-000000000001",
            "subject": "Re: quick question",
            "classifications": [{"id": "c2", "category": "POSITIVE"}],
            "received_at": unify.world.now(),
        },
    )
    await poll(store, rt)
    events = await drain(store)
    assert types(events) == [(one, "enrollment.replied")]
    assert events[0]["data"]["previous"]["replied"] is False
    assert events[0]["data"]["previous"]["reason"] == "auto_reply"


@pytest.mark.parametrize("with_status", [True, False])
async def test_status_present_or_absent(
    store: Redis, unify: UnifyHarness, with_status: bool
) -> None:
    unify.world.include_status = with_status
    unify.world.include_enrolled_by_play = with_status
    rt = runtime_of(unify)
    [a, b] = unify.seed(2)
    await poll(store, rt)
    unify.finish(a)
    unify.pause(b)
    await poll(store, rt)
    events = await drain(store)
    assert types(events) == sorted([(a, "enrollment.finished"), (b, "enrollment.paused")])
    assert {e["data"]["current"]["raw_status"] for e in events} == {"FINISHED", "IN_PROGRESS"}


async def test_a_bad_updated_at_quarantines_the_record_and_writes_nothing_for_it(
    store: Redis, unify: UnifyHarness
) -> None:
    rt = runtime_of(unify)
    [one] = unify.seed(1)
    await poll(store, rt)
    before = (await StateStore(store, source=SOURCE).stored())[one]
    unify.world._rows[one][1]["updated_at"] = "2026-01-05 09:00:09"  # no T, no zone
    unify.world._rows[one][1]["is_opted_out"] = True
    result = await poll(store, rt)  # one bad record never fails the poll (SPEC §5)
    assert result.quarantined == 1
    assert await drain(store) == []
    assert (await StateStore(store, source=SOURCE).stored())[one] == before
    status = await source_status(store, SOURCE)
    assert status.quarantine_error is not None
    assert status.quarantine_error["enrollment_id"] == one
    assert status.quarantine_error["field"] == "updated_at"
