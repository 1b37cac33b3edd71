"""Delivery from the outbox: at-least-once, same id on every retry, backoff, dead letters."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis

from notifiers.webhook import WebhookNotifier
from worker.delivery.deliver import DestinationRuntime, deliver_destination
from worker.delivery.outbox import Outbox, Route, enqueue
from worker.demo.fakes.receiver import WebhookReceiver
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import Event, EventType, event_id
from worker.store import keys
from worker.store.batch import Batch

SOURCE = "src"
SECRET = "whsec_" + "c2Vxd2F0Y2gtdGVzdC1zZWNyZXQtMzJieXRlcyE="


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def make_event(n: int) -> Event:
    state = State(status=Status.ACTIVE, raw_status="Active", step=n)
    return Event(
        id=event_id(source=SOURCE, enrollment_id=f"1:{n}", event_type="x", change_key=str(n)),
        type=EventType.STEP_ADVANCED,
        source=SOURCE,
        provider="replyio",
        enrollment_id=f"1:{n}",
        sequence=SequenceRef(id="1", name="S"),
        contact=Contact(id=str(n)),
        previous=state,
        current=state,
        detected_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


async def commit_events(store: Redis, events: list[Event], routes: list[Route]) -> None:
    batch = Batch()
    for event in events:
        enqueue(batch, event, routes=routes, now_ms=0)
    await store.set(keys.lease(SOURCE), "t")
    await batch.commit(store, lease_key=keys.lease(SOURCE), token="t", ttl_ms=60_000)


def runtime(receiver: WebhookReceiver, name: str = "hook") -> DestinationRuntime:
    notifier = WebhookNotifier(
        name=name, url=receiver.url + "/in", secrets=[SECRET], allow_private_network=True
    )
    return DestinationRuntime(name=name, notifier=notifier)


async def test_delivers_each_event_once_and_forgets_its_body(
    store: Redis, receiver: WebhookReceiver
) -> None:
    events = [make_event(n) for n in range(3)]
    await commit_events(store, events, [Route(destination="hook", events=("*",), sources=())])
    dest = runtime(receiver)
    result = await deliver_destination(store, dest, sources=[SOURCE], clock=Clock())
    assert result.delivered == 3
    assert sorted(receiver.received_ids()) == sorted(e.id for e in events)
    by_id = {e.id: e for e in events}
    for delivery in receiver.deliveries:
        assert delivery.webhook_id is not None
        assert orjson.loads(delivery.body) == by_id[delivery.webhook_id].document()
    assert await store.hlen(keys.events(SOURCE)) == 0  # type: ignore[misc]
    again = await deliver_destination(store, dest, sources=[SOURCE], clock=Clock())
    assert again.delivered == 0
    assert len(receiver.deliveries) == 3
    await dest.notifier.aclose()


async def test_retries_keep_the_id_and_honour_retry_after(
    store: Redis, receiver: WebhookReceiver
) -> None:
    event = make_event(1)
    await commit_events(store, [event], [Route(destination="hook", events=("*",), sources=())])
    dest, clock = runtime(receiver), Clock()
    receiver.fail_next(1, status=503, retry_after=120)
    first = await deliver_destination(
        store, dest, sources=[SOURCE], clock=clock, rng=random.Random(1)
    )
    assert first.failed
    assert first.retrying == 1
    outbox = Outbox(store, source=SOURCE, destination="hook")
    assert await outbox.due_now(now_ms=int(clock.now * 1000), limit=10) == []
    clock.now += 119
    assert (await deliver_destination(store, dest, sources=[SOURCE], clock=clock)).delivered == 0
    clock.now += 2
    assert (await deliver_destination(store, dest, sources=[SOURCE], clock=clock)).delivered == 1
    assert [d.webhook_id for d in receiver.deliveries] == [event.id, event.id]
    assert [d.status for d in receiver.deliveries] == [503, 200]
    await dest.notifier.aclose()


async def test_permanent_failure_dead_letters_at_once_and_replay_keeps_the_id(
    store: Redis, receiver: WebhookReceiver
) -> None:
    event = make_event(2)
    await commit_events(store, [event], [Route(destination="hook", events=("*",), sources=())])
    dest, clock = runtime(receiver), Clock()
    receiver.fail_next(1, status=410)
    result = await deliver_destination(store, dest, sources=[SOURCE], clock=clock)
    assert result.dead == 1
    outbox = Outbox(store, source=SOURCE, destination="hook")
    letters = await outbox.dead_letters()
    assert [(x.event_id, x.event_type, x.attempts) for x in letters] == [
        (event.id, "enrollment.step_advanced", 1)
    ]
    assert "410" in letters[0].error
    assert await outbox.replay([event.id], now_ms=int(clock.now * 1000)) == 1
    assert (await deliver_destination(store, dest, sources=[SOURCE], clock=clock)).delivered == 1
    assert [d.webhook_id for d in receiver.deliveries] == [event.id, event.id]
    assert await outbox.dead_letters() == []
    assert await store.hlen(keys.events(SOURCE)) == 0  # type: ignore[misc]
    await dest.notifier.aclose()


async def test_retriable_failures_dead_letter_only_after_24_hours(
    store: Redis, receiver: WebhookReceiver
) -> None:
    event = make_event(3)
    await commit_events(store, [event], [Route(destination="hook", events=("*",), sources=())])
    dest, clock = runtime(receiver), Clock()
    start = clock.now
    outbox = Outbox(store, source=SOURCE, destination="hook")
    receiver.fail_next(1000, status=500)
    attempts = 0
    while not await outbox.dead_letters():
        result = await deliver_destination(
            store, dest, sources=[SOURCE], clock=clock, rng=random.Random(attempts)
        )
        attempts += result.retrying + result.dead
        due = await store.zscore(keys.due(SOURCE, "hook"), event.id)
        clock.now = max(clock.now + 1, (due or 0) / 1000)
        assert attempts < 50
    assert clock.now - start >= 24 * 3600
    assert attempts >= 8
    assert {d.webhook_id for d in receiver.deliveries} == {event.id}
    await dest.notifier.aclose()


async def test_one_event_fans_out_to_each_matching_destination(
    store: Redis, receiver: WebhookReceiver
) -> None:
    routes = [
        Route(destination="all", events=("*",), sources=()),
        Route(destination="steps", events=("enrollment.step_*",), sources=(SOURCE,)),
        Route(destination="replies", events=("enrollment.replied",), sources=()),
        Route(destination="elsewhere", events=("*",), sources=("other",)),
    ]
    event = make_event(4)
    await commit_events(store, [event], routes)
    assert await store.hget(keys.event_refs(SOURCE), event.id) == "2"  # type: ignore[misc]
    for name in ("all", "steps", "replies", "elsewhere"):
        dest = runtime(receiver, name)
        await deliver_destination(store, dest, sources=[SOURCE], clock=Clock())
        await dest.notifier.aclose()
    assert [d.webhook_id for d in receiver.deliveries] == [event.id, event.id]
    assert await store.hlen(keys.events(SOURCE)) == 0  # type: ignore[misc]
