"""The per-(source, destination) delivery lock: short, renewed while a round runs, and obeyed.

A killed deliverer frees its queue when the lock's TTL runs out, so the TTL is short; a live
one renews it, so a long round is never joined by a second deliverer (no double sends), and a
deliverer that finds its lock gone stops before sending anything more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from notifiers.base import OutboundEvent
from worker.delivery import deliver
from worker.delivery.deliver import DestinationRuntime, deliver_destination
from worker.delivery.outbox import Route, enqueue
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import Event, EventType, event_id
from worker.store import keys
from worker.store.batch import Batch

SOURCE = "src"
DESTINATION = "hook"
EVENTS = 12


async def _nothing() -> None:
    return None


class SlowNotifier:
    """Takes `delay` per event; runs `on_send` before each one."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[str] = []
        self.on_send: Callable[[], Awaitable[None]] = _nothing

    @property
    def max_batch(self) -> int:
        return 1

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        await self.on_send()
        await asyncio.sleep(self.delay)
        self.sent += [e.id for e in events]

    async def aclose(self) -> None:
        return None


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


@pytest.fixture
async def queued(store: Redis) -> list[str]:
    batch = Batch()
    events = [make_event(n) for n in range(EVENTS)]
    for event in events:
        enqueue(
            batch,
            event,
            routes=[Route(destination=DESTINATION, events=("*",), sources=())],
            now_ms=0,
        )
    await store.set(keys.lease(SOURCE), "t")
    await batch.commit(store, lease_key=keys.lease(SOURCE), token="t", ttl_ms=60_000)
    return [e.id for e in events]


async def run(store: Redis, notifier: SlowNotifier, *, after: float = 0.0) -> int:
    await asyncio.sleep(after)
    runtime = DestinationRuntime(name=DESTINATION, notifier=notifier)
    result = await deliver_destination(store, runtime, sources=[SOURCE], clock=time.time)
    return result.delivered


async def test_a_round_longer_than_the_lock_ttl_keeps_the_lock(
    store: Redis, queued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliver, "LOCK_TTL_MS", 300)
    first, second = SlowNotifier(0.1), SlowNotifier(0.1)
    # The round takes ~1.2 s, four TTLs; the second deliverer tries after two of them.
    done = await asyncio.gather(run(store, first), run(store, second, after=0.6))
    assert list(done) == [EVENTS, 0]
    assert sorted(first.sent) == sorted(queued)
    assert second.sent == []  # nothing sent twice
    assert await store.exists(keys.delivery_lock(SOURCE, DESTINATION)) == 0  # released


async def test_a_deliverer_whose_lock_is_gone_stops_sending(
    store: Redis, queued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lock is checked once per batch and by the background renewal (every TTL/3 = 0.1 s):
    # a batch of 12 sends at 0.1 s each would take 1.2 s; the loss is seen within 0.1 s.
    monkeypatch.setattr(deliver, "LOCK_TTL_MS", 300)
    notifier = SlowNotifier(0.1)

    async def taken_over() -> None:
        if len(notifier.sent) == 3:  # e.g. we stalled past the TTL and another worker took it
            await store.set(keys.delivery_lock(SOURCE, DESTINATION), "someone-else")

    notifier.on_send = taken_over
    delivered = await run(store, notifier)
    assert 4 <= delivered <= 5  # sends under way finish; none starts after the loss is seen
    assert len(notifier.sent) == delivered  # each one sent was acked, none twice
    assert await store.zcard(keys.due(SOURCE, DESTINATION)) == EVENTS - delivered  # acked
    assert await store.get(keys.delivery_lock(SOURCE, DESTINATION)) == "someone-else"  # kept
