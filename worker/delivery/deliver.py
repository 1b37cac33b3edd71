"""Deliver due events to one destination: send, then ack, retry later, or dead-letter.

Delivery never touches enrollment state: an outage only delays events. Deliveries are read
and acked in batches; up to `concurrency` sends are in flight per destination, but the events
of one enrollment go one after the other, in detection order: one lane per enrollment, and an
enrollment whose delivery is being retried holds its later deliveries back (Outbox.hold/park).
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from notifiers.base import Notifier, OutboundEvent
from worker.delivery.lanes import Acker, Due, Stop, lanes, order_key, send_lanes
from worker.delivery.outbox import RETRY_WINDOW_S, Attempts, Outbox, next_delay
from worker.errors import DeliveryError, DeliveryPermanent, DeliveryRetriable
from worker.store import keys, lease
from worker.store.redis_io import awaited

log = structlog.get_logger("seqwatch.deliver")
# Renewed once per batch and in the background while a batch is in flight; a deliverer that
# dies frees the queue this soon.
LOCK_TTL_MS = 15_000
# Deliveries read per batch for each send that may be in flight.
READ_PER_SLOT = 64
MAX_READ = 1000


@dataclass(slots=True, kw_only=True)
class DeliveryResult:
    destination: str
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    failed: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRuntime:
    name: str
    notifier: Notifier
    concurrency: int = 1  # sends in flight to this destination at once (webhook: config)


async def _settle_failure(
    outbox: Outbox,
    batch: Sequence[OutboundEvent],
    error: DeliveryError,
    *,
    now_ms: int,
    rng: random.Random,
    result: DeliveryResult,
) -> None:
    """Retry later or dead-letter each event of a failed send, without holding anything back
    (worker/delivery/digest.py: a digest's events are ordered within each message, not across
    retries)."""
    group = [Due(event=e, key=order_key(e.body)) for e in batch]
    await _settle_failures(outbox, [(group, error)], holders=None, now_ms=now_ms, rng=rng,
                           result=result)  # fmt: skip


async def _settle_failures(
    outbox: Outbox,
    failed: Sequence[tuple[list[Due], DeliveryError]],
    *,
    holders: dict[str, str] | None,
    now_ms: int,
    rng: random.Random,
    result: DeliveryResult,
) -> None:
    """Per failed event: retry later or dead-letter. With `holders` (per-event sends), a
    retried event holds its enrollment's later events back, and a dead-lettered holder lets
    them go."""
    pairs = [(due, error) for group, error in failed for due in group]
    previous = await outbox.attempts([due.event.id for due, _ in pairs])
    for (due, error), before in zip(pairs, previous, strict=True):
        event = due.event
        attempts = Attempts(
            count=(before.count if before else 0) + 1,
            first_failure_ms=before.first_failure_ms if before else now_ms,
            last_error=str(error)[:300],
        )
        expired = now_ms - attempts.first_failure_ms >= RETRY_WINDOW_S * 1000
        if isinstance(error, DeliveryPermanent) or expired:
            await outbox.bury(event.id, now_ms=now_ms, attempts=attempts)
            if holders is not None and holders.get(due.key) == event.id:
                await outbox.release(due.key, event.id)
            result.dead += 1
            continue
        retry_after = error.retry_after if isinstance(error, DeliveryRetriable) else None
        delay = next_delay(attempts=attempts.count, retry_after=retry_after, rng=rng)
        await outbox.reschedule(event.id, due_ms=now_ms + int(delay * 1000), attempts=attempts)
        if holders is not None:
            await outbox.hold(due.key, event.id)  # later events of this enrollment wait for it
            holders.setdefault(due.key, event.id)
        result.retrying += 1


async def deliver_destination(
    redis: Redis,
    destination: DestinationRuntime,
    *,
    sources: Sequence[str],
    clock: Callable[[], float],
    rng: random.Random | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> DeliveryResult:
    """Delivers everything due, batch after batch, until nothing is due; a source's queue
    stops at its first failure (the rest waits for the next round). Once `stopping()` is
    true no new send starts: the sends under way finish and are acked."""
    rng = rng or random.Random()
    result = DeliveryResult(destination=destination.name)
    slots = asyncio.Semaphore(max(1, destination.concurrency))
    outcomes = await asyncio.gather(
        *(
            _deliver_source(
                redis,
                destination,
                s,
                slots=slots,
                clock=clock,
                rng=rng,
                result=result,
                stop=Stop(stopping),
            )
            for s in sources
        ),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    await _record_health(redis, result, clock=clock)
    return result


async def _deliver_source(
    redis: Redis,
    destination: DestinationRuntime,
    source: str,
    *,
    slots: asyncio.Semaphore,
    clock: Callable[[], float],
    rng: random.Random,
    result: DeliveryResult,
    stop: Stop,
) -> None:
    if stop.reason is not None:
        return
    held = lease.Lease(
        key=keys.delivery_lock(source, destination.name),
        token=secrets.token_hex(8),
        ttl_ms=LOCK_TTL_MS,
    )
    # One deliverer per (source, destination) at a time: no double sends between workers.
    if not await redis.set(held.key, held.token, nx=True, px=held.ttl_ms):
        return
    outbox = Outbox(redis, source=source, destination=destination.name)
    try:
        async with lease.kept_alive(redis, held, on_lost=stop.lose):
            await _drain(
                redis, outbox, destination, held=held, slots=slots, stop=stop, clock=clock, rng=rng,
                result=result,
            )  # fmt: skip
    finally:
        await lease.release(redis, held)


async def _drain(
    redis: Redis,
    outbox: Outbox,
    destination: DestinationRuntime,
    *,
    held: lease.Lease,
    slots: asyncio.Semaphore,
    stop: Stop,
    clock: Callable[[], float],
    rng: random.Random,
    result: DeliveryResult,
) -> None:
    """Send due batches from one (source, destination) queue while we hold its lock."""
    notifier, source = destination.notifier, outbox.source
    concurrency = max(1, destination.concurrency)
    # A digest notifier (Slack) reads one full digest at a time: a paced peer gets full ones.
    window = notifier.max_batch if notifier.max_batch > 1 else READ_PER_SLOT * concurrency
    window = min(MAX_READ, window)
    while stop.reason is None:
        if not await lease.renew(redis, held):
            return  # the lock expired (we were stalled) and may be another worker's now
        now_ms = int(clock() * 1000)
        due, any_held = await outbox.read_due(now_ms=now_ms, limit=window)
        if not due:
            return
        orphans = [event_id for event_id, body in due if body is None]
        if orphans:  # body gone (e.g. manual cleanup): nothing left to send
            log.warning(
                "delivery_orphaned", destination=destination.name, source=source,
                event_ids=orphans,
            )  # fmt: skip
            await outbox.ack(orphans)
        batch = [
            Due(event=OutboundEvent(id=i, body=b), key=order_key(b))
            for i, b in due
            if b is not None
        ]
        holders = await _holders(outbox, batch) if any_held else {}
        batch = await _park_waiting(outbox, batch, holders)
        if not batch:
            continue
        acker = Acker(functools.partial(_ack, outbox, holders, result))
        outcome = await send_lanes(
            notifier,
            lanes(batch, max_batch=notifier.max_batch, first=set(holders.values())),
            slots=slots,
            workers=concurrency,
            stop=stop,
            acker=acker,
        )
        if outcome.crash is not None:
            raise outcome.crash  # what was sent and not acked stays due: sent again later
        await acker.flush()
        if outcome.failed:
            await _settle_failures(
                outbox, outcome.failed, holders=holders, now_ms=now_ms, rng=rng, result=result
            )
            failed_keys = {d.key for group, _ in outcome.failed for d in group}
            await outbox.park([(d.key, d.event.id) for d in outcome.unsent if d.key in failed_keys])
            first_error = outcome.failed[0][1]
            result.failed = True
            result.error = str(first_error)[:300]
            log.warning(
                "delivery_failed",
                destination=destination.name,
                source=source,
                events=sum(len(group) for group, _ in outcome.failed),
                error=str(first_error),
                permanent=isinstance(first_error, DeliveryPermanent),
            )
            return


async def _ack(
    outbox: Outbox, holders: dict[str, str], result: DeliveryResult, taken: list[Due]
) -> None:
    """Ack delivered events; a delivered holder lets its enrollment's parked events go."""
    releases = [(d.key, d.event.id) for d in taken if holders.get(d.key) == d.event.id]
    await outbox.ack([d.event.id for d in taken], releases=releases)
    result.delivered += len(taken)


async def _holders(outbox: Outbox, batch: Sequence[Due]) -> dict[str, str]:
    """Ordering key -> its retrying delivery, for the keys in this batch that have one."""
    order_keys = list(dict.fromkeys(d.key for d in batch))
    found = await outbox.holders(order_keys)
    return {k: h for k, h in zip(order_keys, found, strict=True) if h is not None}


async def _park_waiting(outbox: Outbox, batch: list[Due], holders: dict[str, str]) -> list[Due]:
    """Deliveries whose enrollment waits on a retry not due in this batch are parked."""
    if not holders:
        return batch
    present = {d.event.id for d in batch}
    waiting = [
        d
        for d in batch
        if d.key in holders and holders[d.key] != d.event.id and holders[d.key] not in present
    ]
    if not waiting:
        return batch
    await outbox.park([(d.key, d.event.id) for d in waiting])
    parked = {d.event.id for d in waiting}
    return [d for d in batch if d.event.id not in parked]


async def _record_health(
    redis: Redis, result: DeliveryResult, *, clock: Callable[[], float]
) -> None:
    if not (result.delivered or result.failed):
        return
    key = keys.destination_health(result.destination)
    fields = {"last_attempt_at": repr(clock()), "last_outcome": "failed" if result.failed else "ok"}
    if result.failed:
        fields["last_error"] = result.error or ""
    else:
        fields["last_success_at"] = repr(clock())
    await awaited(redis.hset(key, mapping=fields))
    if not result.failed:
        await awaited(redis.hdel(key, "last_error"))
