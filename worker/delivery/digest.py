"""Deliver to a digest destination (Slack): one message per burst, across every source.

A webhook gets each event on its own, source by source (worker/delivery/deliver.py). A digest
notifier takes many events in one `send`, so here the due events of every source's queue are
gathered first, each queue under its own delivery lock as in deliver.py, and sent as one
message; then each queue is acked, or its events are settled as failed, on its own.

The daemon waits for a burst to settle before it sends (`settle_s`): the polls of one tick commit
at slightly different moments, and a message sent after the first of them would split the burst.
A steady stream still gets a message at least every `max_wait_s`.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

import structlog
from redis.asyncio import Redis

from notifiers.base import OutboundEvent
from worker.delivery.deliver import (
    LOCK_TTL_MS,
    DeliveryResult,
    DestinationRuntime,
    _record_health,
    _settle_failure,
)
from worker.delivery.outbox import Outbox, due_span
from worker.errors import DeliveryError, DeliveryPermanent
from worker.store import keys, lease

log = structlog.get_logger("seqwatch.deliver")
DIGEST_MAX_WAIT_S = 30.0


async def _settling(
    redis: Redis,
    destination: str,
    held: dict[str, lease.Lease],
    *,
    now: float,
    settle_s: float,
    max_wait_s: float,
) -> bool:
    """Whether the due events are still arriving: the newest is younger than `settle_s` and
    the oldest has not waited `max_wait_s`."""
    now_ms = int(now * 1000)
    span = await due_span(redis, sources=list(held), destination=destination, now_ms=now_ms)
    if span is None:
        return False
    oldest, newest = span
    return now_ms - newest < settle_s * 1000 and now_ms - oldest < max_wait_s * 1000


async def deliver_digest(
    redis: Redis,
    destination: DestinationRuntime,
    *,
    sources: Sequence[str],
    clock: Callable[[], float],
    rng: random.Random | None = None,
    max_rounds: int = 1000,
    settle_s: float = 0.0,
    max_wait_s: float = DIGEST_MAX_WAIT_S,
) -> DeliveryResult:
    """Attempts every delivery due now, once, in messages of up to `max_batch` events; with
    `settle_s`, nothing while the newest due event is younger than that (unless the oldest has
    waited `max_wait_s`): the next round sends the whole burst."""
    rng = rng or random.Random()
    result = DeliveryResult(destination=destination.name)
    async with AsyncExitStack() as stack:
        held: dict[str, lease.Lease] = {}
        for source in sources:
            claim = lease.Lease(
                key=keys.delivery_lock(source, destination.name),
                token=secrets.token_hex(8),
                ttl_ms=LOCK_TTL_MS,
            )
            if not await redis.set(claim.key, claim.token, nx=True, px=claim.ttl_ms):
                continue  # another worker delivers this queue now
            stack.push_async_callback(lease.release, redis, claim)
            await stack.enter_async_context(lease.kept_alive(redis, claim))
            held[source] = claim
        if settle_s > 0 and await _settling(
            redis, destination.name, held, now=clock(), settle_s=settle_s, max_wait_s=max_wait_s
        ):
            return result
        for _ in range(max_rounds):
            if not await _round(redis, destination, held, clock=clock, rng=rng, result=result):
                break
    await _record_health(redis, result, clock=clock)
    return result


async def _round(
    redis: Redis,
    destination: DestinationRuntime,
    held: dict[str, lease.Lease],
    *,
    clock: Callable[[], float],
    rng: random.Random,
    result: DeliveryResult,
) -> bool:
    """One message; False when there is nothing more to send now (or it failed)."""
    notifier = destination.notifier
    now_ms = int(clock() * 1000)
    batches: list[tuple[Outbox, list[OutboundEvent]]] = []
    room = notifier.max_batch
    for source, claim in list(held.items()):
        if room <= 0:
            break
        if not await lease.renew(redis, claim):
            del held[source]  # we stalled and the lock may be another worker's now
            continue
        outbox = Outbox(redis, source=source, destination=destination.name)
        due = await outbox.due_now(now_ms=now_ms, limit=room)
        orphans = [event_id for event_id, body in due if body is None]
        if orphans:  # body gone (e.g. manual cleanup): nothing left to send
            log.warning(
                "delivery_orphaned", destination=destination.name, source=source,
                event_ids=orphans,
            )  # fmt: skip
            await outbox.ack(orphans)
        events = [OutboundEvent(id=i, body=b) for i, b in due if b is not None]
        if events:
            batches.append((outbox, events))
            room -= len(events)
    if not batches:
        return False
    try:
        await notifier.send([event for _, events in batches for event in events])
    except DeliveryError as exc:
        result.failed = True
        result.error = str(exc)[:300]
        for outbox, events in batches:
            await _settle_failure(outbox, events, exc, now_ms=now_ms, rng=rng, result=result)
        log.warning(
            "delivery_failed", destination=destination.name,
            events=sum(len(e) for _, e in batches), error=str(exc),
            permanent=isinstance(exc, DeliveryPermanent),
        )  # fmt: skip
        return False
    for outbox, events in batches:
        await outbox.ack([e.id for e in events])
        result.delivered += len(events)
    return True
