"""Deliver due events to one destination: send, then ack, retry later, or dead-letter.

Delivery never touches enrollment state: an outage only delays events. Deliveries are read
and acked in batches; up to `concurrency` sends are in flight per destination, but the events
of one enrollment go one after the other, in detection order: one lane per enrollment, and an
enrollment whose delivery is being retried holds its later deliveries back (Outbox.hold/park).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import orjson
import structlog
from redis.asyncio import Redis

from notifiers.base import Notifier, OutboundEvent
from worker import keys, lease
from worker.errors import DeliveryError, DeliveryPermanent, DeliveryRetriable
from worker.outbox import RETRY_WINDOW_S, Attempts, Outbox, next_delay
from worker.redis_io import awaited

log = structlog.get_logger("seqwatch.deliver")
# Renewed once per batch and in the background while a batch is in flight; a deliverer that
# dies frees the queue this soon.
LOCK_TTL_MS = 15_000
# Deliveries read per batch for each send that may be in flight.
READ_PER_SLOT = 64
MAX_READ = 1000
# Delivered events are acked in chunks while a batch is in flight (and at its end), every
# ACK_EVERY events or ACK_INTERVAL_S seconds: a crash redelivers about one chunk, not a batch.
ACK_EVERY = 64
ACK_INTERVAL_S = 0.5
# Ordering key of events that name no enrollment (source health notices): one lane per source.
SOURCE_LANE = "~source"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Due:
    event: OutboundEvent
    key: str  # ordering key: the enrollment


@dataclass(slots=True)
class _Outcome:
    failed: list[tuple[list[_Due], DeliveryError]] = field(default_factory=list)
    unsent: list[_Due] = field(default_factory=list)
    crash: BaseException | None = None


def order_key(body: bytes) -> str:
    """The enrollment an event document is about; its deliveries keep detection order."""
    try:
        data = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return SOURCE_LANE
    enrollment = data.get("enrollment_id") if isinstance(data, dict) else None
    return enrollment if isinstance(enrollment, str) and enrollment else SOURCE_LANE


class _Stop:
    """Set when the batch must stop launching sends: a failure, the lock was lost, or the
    process is shutting down (`stopping`)."""

    __slots__ = ("_reason", "_stopping")

    def __init__(self, stopping: Callable[[], bool]) -> None:
        self._reason: str | None = None
        self._stopping = stopping

    @property
    def reason(self) -> str | None:
        if self._reason is None and self._stopping():
            self._reason = "shutting down"
        return self._reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._reason = value


class _Acker:
    """Acks delivered events in chunks, releasing the enrollments a delivered holder held."""

    def __init__(self, outbox: Outbox, holders: dict[str, str], result: DeliveryResult) -> None:
        self._outbox, self._holders, self._result = outbox, holders, result
        self._pending: list[_Due] = []
        self._flushed_at = time.monotonic()

    async def delivered(self, group: Sequence[_Due]) -> None:
        self._pending += group
        if len(self._pending) >= ACK_EVERY or time.monotonic() - self._flushed_at >= ACK_INTERVAL_S:
            await self.flush()

    async def flush(self) -> None:
        self._flushed_at = time.monotonic()
        taken, self._pending = self._pending, []
        if not taken:
            return
        held = self._holders
        releases = [(d.key, d.event.id) for d in taken if held.get(d.key) == d.event.id]
        await self._outbox.ack([d.event.id for d in taken], releases=releases)
        self._result.delivered += len(taken)


async def _send_lanes(
    notifier: Notifier,
    lanes: Sequence[list[list[_Due]]],
    *,
    slots: asyncio.Semaphore,
    workers: int,
    stop: _Stop,
    acker: _Acker,
) -> _Outcome:
    """Each lane's groups in order, lanes side by side; no new send once `stop` is set."""
    outcome = _Outcome()
    queue = deque(lanes)

    async def work() -> None:
        while queue:
            lane = queue.popleft()
            for index, group in enumerate(lane):
                if stop.reason is not None:
                    outcome.unsent += [d for g in lane[index:] for d in g]
                    break
                try:
                    async with slots:
                        await notifier.send([d.event for d in group])
                    await acker.delivered(group)
                except DeliveryError as exc:
                    outcome.failed.append((group, exc))
                    outcome.unsent += [d for g in lane[index + 1 :] for d in g]
                    stop.reason = stop.reason or "failed"
                    break
                except Exception as exc:  # Redis (an ack, a pacer) or a bug: stop, re-raise
                    outcome.crash = outcome.crash or exc
                    outcome.unsent += [d for g in lane[index + 1 :] for d in g]
                    stop.reason = stop.reason or "crashed"
                    break

    await asyncio.gather(*(work() for _ in range(max(1, min(workers, len(lanes))))))
    return outcome


def _lanes(batch: Sequence[_Due], *, max_batch: int, first: set[str]) -> list[list[list[_Due]]]:
    """Groups of sends per lane. Per-event notifiers: one lane per ordering key, a retried
    holder (`first`) ahead of the deliveries that waited for it. Digest notifiers: one lane."""
    if max_batch > 1:
        return [[list(batch[i : i + max_batch]) for i in range(0, len(batch), max_batch)]]
    by_key: dict[str, list[list[_Due]]] = {}
    for due in batch:
        lane = by_key.setdefault(due.key, [])
        if due.event.id in first:
            lane.insert(0, [due])
        else:
            lane.append([due])
    return list(by_key.values())


async def _settle_failure(
    outbox: Outbox,
    failed: Sequence[tuple[list[_Due], DeliveryError]],
    *,
    holders: dict[str, str],
    now_ms: int,
    rng: random.Random,
    result: DeliveryResult,
) -> None:
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
            if holders.get(due.key) == event.id:
                await outbox.release(due.key, event.id)
            result.dead += 1
            continue
        retry_after = error.retry_after if isinstance(error, DeliveryRetriable) else None
        delay = next_delay(attempts=attempts.count, retry_after=retry_after, rng=rng)
        await outbox.reschedule(event.id, due_ms=now_ms + int(delay * 1000), attempts=attempts)
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
                stop=_Stop(stopping),
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
    stop: _Stop,
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
        async with _kept_alive(redis, held, stop):
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
    stop: _Stop,
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
            _Due(event=OutboundEvent(id=i, body=b), key=order_key(b))
            for i, b in due
            if b is not None
        ]
        holders = await _holders(outbox, batch) if any_held else {}
        batch = await _park_waiting(outbox, batch, holders)
        if not batch:
            continue
        acker = _Acker(outbox, holders, result)
        outcome = await _send_lanes(
            notifier,
            _lanes(batch, max_batch=notifier.max_batch, first=set(holders.values())),
            slots=slots,
            workers=concurrency,
            stop=stop,
            acker=acker,
        )
        if outcome.crash is not None:
            raise outcome.crash  # what was sent and not acked stays due: sent again later
        await acker.flush()
        if outcome.failed:
            await _settle_failure(
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


async def _holders(outbox: Outbox, batch: Sequence[_Due]) -> dict[str, str]:
    """Ordering key -> its retrying delivery, for the keys in this batch that have one."""
    order_keys = list(dict.fromkeys(d.key for d in batch))
    found = await outbox.holders(order_keys)
    return {k: h for k, h in zip(order_keys, found, strict=True) if h is not None}


async def _park_waiting(outbox: Outbox, batch: list[_Due], holders: dict[str, str]) -> list[_Due]:
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


@contextlib.asynccontextmanager
async def _kept_alive(redis: Redis, held: lease.Lease, stop: _Stop) -> AsyncIterator[None]:
    """Renews the lock in the background while a batch is in flight; a failed renewal stops
    new sends at once (the batch loop also renews, once per batch)."""

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(held.ttl_ms / 3000)
            try:
                renewed = await lease.renew(redis, held)
            except Exception:  # noqa: S112 (Redis away: the next renewal tries again)
                continue
            if not renewed:
                stop.reason = "lock lost"
                return

    task = asyncio.create_task(renew_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
