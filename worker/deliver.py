"""Deliver due events to one destination: send, then ack, retry later, or dead-letter.

Delivery never touches enrollment state: an outage only delays events.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from notifiers.base import Notifier, OutboundEvent
from worker import keys, lease
from worker.errors import DeliveryError, DeliveryPermanent, DeliveryRetriable
from worker.outbox import RETRY_WINDOW_S, Attempts, Outbox, next_delay
from worker.redis_io import awaited

log = structlog.get_logger("seqwatch.deliver")
# Renewed while a round runs (and checked before each send); a deliverer that dies frees the
# queue this soon.
LOCK_TTL_MS = 15_000


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


async def _settle_failure(
    outbox: Outbox,
    batch: Sequence[OutboundEvent],
    error: DeliveryError,
    *,
    now_ms: int,
    rng: random.Random,
    result: DeliveryResult,
) -> None:
    previous = await outbox.attempts([e.id for e in batch])
    for event, before in zip(batch, previous, strict=True):
        attempts = Attempts(
            count=(before.count if before else 0) + 1,
            first_failure_ms=before.first_failure_ms if before else now_ms,
            last_error=str(error)[:300],
        )
        expired = now_ms - attempts.first_failure_ms >= RETRY_WINDOW_S * 1000
        if isinstance(error, DeliveryPermanent) or expired:
            await outbox.bury(event.id, now_ms=now_ms, attempts=attempts)
            result.dead += 1
            continue
        retry_after = error.retry_after if isinstance(error, DeliveryRetriable) else None
        delay = next_delay(attempts=attempts.count, retry_after=retry_after, rng=rng)
        await outbox.reschedule(event.id, due_ms=now_ms + int(delay * 1000), attempts=attempts)
        result.retrying += 1


async def deliver_destination(
    redis: Redis,
    destination: DestinationRuntime,
    *,
    sources: Sequence[str],
    clock: Callable[[], float],
    rng: random.Random | None = None,
    max_rounds: int = 1000,
) -> DeliveryResult:
    """Attempts every delivery due now, once; stops at this destination's first failure."""
    rng = rng or random.Random()
    result = DeliveryResult(destination=destination.name)
    for source in sources:
        held = lease.Lease(
            key=keys.delivery_lock(source, destination.name),
            token=secrets.token_hex(8),
            ttl_ms=LOCK_TTL_MS,
        )
        # One deliverer per (source, destination) at a time: no double sends between workers.
        if not await redis.set(held.key, held.token, nx=True, px=held.ttl_ms):
            continue
        outbox = Outbox(redis, source=source, destination=destination.name)
        try:
            async with lease.kept_alive(redis, held):
                await _drain(
                    redis, outbox, destination, held=held, clock=clock, rng=rng, result=result,
                    max_rounds=max_rounds,
                )  # fmt: skip
        finally:
            await lease.release(redis, held)
    await _record_health(redis, result, clock=clock)
    return result


async def _drain(
    redis: Redis,
    outbox: Outbox,
    destination: DestinationRuntime,
    *,
    held: lease.Lease,
    clock: Callable[[], float],
    rng: random.Random,
    result: DeliveryResult,
    max_rounds: int,
) -> None:
    """Send due batches from one (source, destination) queue while we hold its lock."""
    notifier, source = destination.notifier, outbox.source
    for _ in range(max_rounds):
        if not await lease.renew(redis, held):
            return  # the lock expired (we were stalled) and may be another worker's now
        now_ms = int(clock() * 1000)
        due = await outbox.due_now(now_ms=now_ms, limit=notifier.max_batch)
        if not due:
            break
        orphans = [event_id for event_id, body in due if body is None]
        if orphans:  # body gone (e.g. manual cleanup): nothing left to send
            log.warning(
                "delivery_orphaned", destination=destination.name, source=source,
                event_ids=orphans,
            )  # fmt: skip
            await outbox.ack(orphans)
        batch = [OutboundEvent(id=i, body=b) for i, b in due if b is not None]
        if not batch:
            continue
        try:
            await notifier.send(batch)
        except DeliveryError as exc:
            result.failed = True
            result.error = str(exc)[:300]
            await _settle_failure(outbox, batch, exc, now_ms=now_ms, rng=rng, result=result)
            log.warning(
                "delivery_failed",
                destination=destination.name,
                source=source,
                events=len(batch),
                error=str(exc),
                permanent=isinstance(exc, DeliveryPermanent),
            )
            break
        await outbox.ack([e.id for e in batch])
        result.delivered += len(batch)


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
