"""Concurrent delivery keeps each enrollment's events in detection order, across retries too.

A recording notifier stands in for the HTTP peer (the webhook client has its own suite); the
outbox is the real one, in the suite's real Redis.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from notifiers.base import OutboundEvent
from worker.delivery import lanes as lanes_module
from worker.delivery.deliver import DestinationRuntime, deliver_destination
from worker.delivery.digest import DIGEST_MAX_WAIT_S, deliver_digest
from worker.delivery.lanes import ACK_EVERY
from worker.delivery.outbox import Outbox, Route, enqueue
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import DeliveryPermanent, DeliveryRetriable
from worker.events import Event, EventType, event_id
from worker.store import keys
from worker.store.batch import Batch

SOURCE = "src"
DESTINATION = "hook"
ROUTES = [Route(destination=DESTINATION, events=("*",), sources=())]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Sends one event at a time after a short random pause; fails the ids it is told to."""

    def __init__(self, *, seed: int = 0, pause: float = 0.002) -> None:
        self.rng = random.Random(seed)
        self.pause = pause
        self.sent: list[str] = []
        self.in_flight: set[str] = set()
        self.most_in_flight = 0
        self.retriable: set[str] = set()
        self.permanent: set[str] = set()
        self.overlaps: list[str] = []
        self.key_of: dict[str, str] = {}
        self.before_send: Callable[[], Awaitable[None]] | None = None

    @property
    def max_batch(self) -> int:
        return 1

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        if self.before_send is not None:
            await self.before_send()
        (event,) = events
        key = self.key_of[event.id]
        if key in {self.key_of[i] for i in self.in_flight}:
            self.overlaps.append(key)
        self.in_flight.add(event.id)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            await asyncio.sleep(self.rng.uniform(0, self.pause))
            if event.id in self.permanent:
                raise DeliveryPermanent("destination 'hook': HTTP 400")
            if event.id in self.retriable:
                raise DeliveryRetriable("destination 'hook': HTTP 503")
            self.sent.append(event.id)
        finally:
            self.in_flight.discard(event.id)

    async def aclose(self) -> None:
        return None


def make_event(enrollment: int, step: int) -> Event:
    state = State(status=Status.ACTIVE, raw_status="Active", step=step)
    enrollment_id = f"1:{enrollment}"
    return Event(
        id=event_id(
            source=SOURCE, enrollment_id=enrollment_id, event_type="x", change_key=str(step)
        ),
        type=EventType.STEP_ADVANCED,
        source=SOURCE,
        provider="replyio",
        enrollment_id=enrollment_id,
        sequence=SequenceRef(id="1", name="S"),
        contact=Contact(id=str(enrollment)),
        previous=state,
        current=state,
        detected_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


async def commit(store: Redis, events: list[tuple[Event, int]], recorder: Recorder) -> None:
    """Enqueue (event, detected_ms) pairs as polls would."""
    batch = Batch()
    for event, detected_ms in events:
        enqueue(batch, event, routes=ROUTES, now_ms=detected_ms)
        recorder.key_of[event.id] = event.enrollment_id
    await store.set(keys.lease(SOURCE), "t")
    await batch.commit(store, lease_key=keys.lease(SOURCE), token="t", ttl_ms=60_000)


async def deliver(store: Redis, recorder: Recorder, clock: Clock, concurrency: int = 8) -> int:
    runtime = DestinationRuntime(name=DESTINATION, notifier=recorder, concurrency=concurrency)
    result = await deliver_destination(
        store, runtime, sources=[SOURCE], clock=clock, rng=random.Random(1)
    )
    return result.delivered


async def test_one_call_drains_far_more_than_one_batch(store: Redis) -> None:
    recorder = Recorder(pause=0)
    events = [(make_event(n, 1), 1_000 + n) for n in range(2_500)]
    await commit(store, events, recorder)
    assert await deliver(store, recorder, Clock()) == 2_500
    assert sorted(recorder.sent) == sorted(e.id for e, _ in events)
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == 0


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_sends_overlap_up_to_concurrency_but_one_enrollment_stays_in_order(
    store: Redis, concurrency: int
) -> None:
    recorder = Recorder(seed=concurrency)
    # 10 enrollments x 20 changes, detected interleaved: enrollment n's step s at time s*100+n.
    detected = [(make_event(n, s), s * 100 + n) for s in range(20) for n in range(10)]
    await commit(store, detected, recorder)
    assert await deliver(store, recorder, Clock(), concurrency=concurrency) == 200
    assert recorder.overlaps == []
    assert recorder.most_in_flight == concurrency
    for n in range(10):
        mine = [e.id for e, _ in detected if e.enrollment_id == f"1:{n}"]
        assert [i for i in recorder.sent if i in mine] == mine


async def test_a_retried_event_holds_back_its_enrollment_until_it_is_delivered(
    store: Redis,
) -> None:
    recorder, clock = Recorder(), Clock()
    first, second, third = (make_event(7, s) for s in range(3))
    others = [make_event(n, 0) for n in range(3)]
    await commit(store, [(first, 1), (second, 2), (third, 3)] + [(e, 4) for e in others], recorder)
    recorder.retriable.add(first.id)
    await deliver(store, recorder, clock)
    assert second.id not in recorder.sent
    assert third.id not in recorder.sent
    outbox = Outbox(store, source=SOURCE, destination=DESTINATION)
    counts = await outbox.counts(now_ms=int(clock.now * 1000))
    assert counts["pending"] >= 3  # held-back deliveries are still pending, just not due

    # Another poll detects a later change of the same enrollment while the first is retried.
    fourth = make_event(7, 3)
    await commit(store, [(fourth, int(clock.now * 1000))], recorder)
    recorder.retriable.clear()
    clock.now += 1  # not yet the retry time (5 s +-20%)
    await deliver(store, recorder, clock)
    assert fourth.id not in recorder.sent
    assert second.id not in recorder.sent
    assert await store.zcount(keys.due(SOURCE, DESTINATION), "-inf", clock.now * 1000) == 0

    clock.now += 3600
    assert await deliver(store, recorder, clock) == 4
    mine = [first.id, second.id, third.id, fourth.id]
    assert [i for i in recorder.sent if i in mine] == mine
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == 0
    assert await store.hlen(keys.held(SOURCE, DESTINATION)) == 0  # type: ignore[misc]
    assert await store.hlen(keys.parked(SOURCE, DESTINATION)) == 0  # type: ignore[misc]


async def test_a_dead_lettered_holder_lets_its_enrollment_go_on(store: Redis) -> None:
    recorder, clock = Recorder(), Clock()
    first, second = make_event(9, 0), make_event(9, 1)
    await commit(store, [(first, 1), (second, 2)], recorder)
    recorder.retriable.add(first.id)
    await deliver(store, recorder, clock)
    assert recorder.sent == []
    recorder.retriable.clear()
    recorder.permanent.add(first.id)  # its retry is refused for good: dead-lettered
    clock.now += 3600
    await deliver(store, recorder, clock)
    outbox = Outbox(store, source=SOURCE, destination=DESTINATION)
    assert [d.event_id for d in await outbox.dead_letters()] == [first.id]
    assert await deliver(store, recorder, clock) == 1
    assert recorder.sent == [second.id]
    assert await store.hlen(keys.held(SOURCE, DESTINATION)) == 0  # type: ignore[misc]


async def test_deliveries_are_acked_in_chunks_while_a_batch_is_in_flight(
    store: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash mid-batch redelivers about ACK_EVERY events, not the whole batch."""
    monkeypatch.setattr(lanes_module, "ACK_INTERVAL_S", 3600.0)  # count-based only here
    recorder = Recorder(pause=0)
    events = [(make_event(n, 1), 1_000 + n) for n in range(300)]
    await commit(store, events, recorder)
    seen: list[int] = []

    async def watching() -> None:
        if len(recorder.sent) == ACK_EVERY + 1:
            seen.append(await store.zcard(keys.due(SOURCE, DESTINATION)))

    recorder.before_send = watching
    assert await deliver(store, recorder, Clock(), concurrency=1) == 300
    assert seen == [300 - ACK_EVERY]


async def test_a_slow_destination_is_acked_every_interval(
    store: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes_module, "ACK_INTERVAL_S", 0.1)
    recorder = Recorder(pause=0)
    events = [(make_event(n, 1), 1_000 + n) for n in range(12)]
    await commit(store, events, recorder)
    seen: list[int] = []

    async def slow() -> None:  # 0.05 s per send: an ack every other send or so
        await asyncio.sleep(0.05)
        if len(recorder.sent) == 6:
            seen.append(await store.zcard(keys.due(SOURCE, DESTINATION)))

    recorder.before_send = slow
    assert await deliver(store, recorder, Clock(), concurrency=1) == 12
    assert len(seen) == 1
    assert 12 - 6 <= seen[0] <= 12 - 4  # all but the last one or two of six are acked


class Digests:
    """A digest notifier (as Slack): up to 50 events per send, one send at a time."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.sent: list[str] = []

    @property
    def max_batch(self) -> int:
        return 50

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        self.sizes.append(len(events))
        self.sent += [e.id for e in events]

    async def aclose(self) -> None:
        return None


async def test_a_digest_notifier_gets_full_digests_in_queue_order(store: Redis) -> None:
    digests = Digests()
    events = [(make_event(n % 7, n), 1_000 + n) for n in range(120)]
    await commit(store, events, Recorder())
    runtime = DestinationRuntime(name=DESTINATION, notifier=digests)
    result = await deliver_destination(store, runtime, sources=[SOURCE], clock=Clock())
    assert result.delivered == 120
    assert digests.sizes == [50, 50, 20]  # one message a second carries 50 events
    assert digests.sent == [e.id for e, _ in events]


async def test_once_stopping_no_new_send_starts_and_what_was_sent_is_acked(
    store: Redis,
) -> None:
    recorder = Recorder(pause=0.01)
    events = [(make_event(n, 1), 1_000 + n) for n in range(200)]
    await commit(store, events, recorder)
    runtime = DestinationRuntime(name=DESTINATION, notifier=recorder, concurrency=4)
    result = await deliver_destination(
        store, runtime, sources=[SOURCE], clock=Clock(), stopping=lambda: len(recorder.sent) >= 20
    )
    assert 20 <= result.delivered <= 20 + 4  # the sends under way when it flipped finish
    assert result.delivered == len(recorder.sent)
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == 200 - result.delivered


async def test_events_detected_in_the_same_millisecond_keep_their_detection_order(
    store: Redis,
) -> None:
    """One poll's events share a millisecond; their ids must not decide the order (nor parking)."""
    recorder, clock = Recorder(), Clock()
    # 5 enrollments x 6 changes, all detected in one millisecond, in this order.
    detected = [make_event(n, s) for n in range(5) for s in range(6)]
    batch = Batch()
    for order, event in enumerate(detected):
        enqueue(batch, event, routes=ROUTES, now_ms=1_000, order=order)
        recorder.key_of[event.id] = event.enrollment_id
    await store.set(keys.lease(SOURCE), "t")
    await batch.commit(store, lease_key=keys.lease(SOURCE), token="t", ttl_ms=60_000)
    ids = [e.id for e in detected]
    assert ids != sorted(ids)  # ids alone would reorder them
    recorder.retriable.add(detected[0].id)  # enrollment 0's later events get parked, then freed
    await deliver(store, recorder, clock)
    recorder.retriable.clear()
    clock.now += 3600
    await deliver(store, recorder, clock)
    for n in range(5):
        mine = [e.id for e in detected if e.enrollment_id == f"1:{n}"]
        assert [i for i in recorder.sent if i in mine] == mine


async def _digest(store: Redis, digests: Digests, clock: Clock, *, settle_s: float) -> int:
    runtime = DestinationRuntime(name=DESTINATION, notifier=digests)
    result = await deliver_digest(store, runtime, sources=[SOURCE], clock=clock, settle_s=settle_s)
    return result.delivered


async def test_a_digest_waits_until_the_burst_has_settled_then_sends_it_whole(
    store: Redis,
) -> None:
    digests, clock = Digests(), Clock()
    now_ms = int(clock.now * 1000)
    await commit(store, [(make_event(n, 1), now_ms - 500) for n in range(3)], Recorder())
    assert await _digest(store, digests, clock, settle_s=2.0) == 0  # the burst may go on
    assert digests.sizes == []
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == 3
    await commit(store, [(make_event(3, 1), now_ms + 900)], Recorder())  # a later poll's event
    clock.now += 1.0
    assert await _digest(store, digests, clock, settle_s=2.0) == 0  # the newest is 0.1 s old
    clock.now += 2.0
    assert await _digest(store, digests, clock, settle_s=2.0) == 4
    assert digests.sizes == [4]  # one message for the whole burst
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == 0


async def test_a_steady_stream_still_gets_a_digest_once_the_oldest_has_waited_long_enough(
    store: Redis,
) -> None:
    digests, clock = Digests(), Clock()
    now_ms = int(clock.now * 1000)
    waited_ms = int(DIGEST_MAX_WAIT_S * 1000)
    events = [(make_event(0, 1), now_ms - waited_ms - 1), (make_event(1, 1), now_ms - 100)]
    await commit(store, events, Recorder())
    assert await _digest(store, digests, clock, settle_s=2.0) == 2
    assert digests.sizes == [2]


async def test_without_a_settle_window_a_digest_goes_at_once(store: Redis) -> None:
    """`seqwatch deliver` (one shot) sends what is due now, however young."""
    digests, clock = Digests(), Clock()
    await commit(store, [(make_event(0, 1), int(clock.now * 1000))], Recorder())
    assert await _digest(store, digests, clock, settle_s=0.0) == 1
    assert digests.sizes == [1]
