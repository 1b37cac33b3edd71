"""Source health: a source failing N polls in a row is `failing` until a poll succeeds.

Transitions (not every failed tick) are what gets logged at error level and, for
destinations that ask for `source.*`, delivered as health events.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from worker.delivery.outbox import Route, publish
from worker.events import HealthType, event_id, notice_document
from worker.redaction import scrub_optional
from worker.store import keys
from worker.store.batch import Batch

DEFAULT_FAILURE_THRESHOLD = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthEvent:
    id: str
    type: HealthType
    source: str
    provider: str
    consecutive_failures: int
    error: str | None
    detected_at: datetime

    def document(self) -> dict[str, Any]:
        return notice_document(
            notice_type=self.type,
            notice_id=self.id,
            source=self.source,
            provider=self.provider,
            details={"consecutive_failures": self.consecutive_failures, "error": self.error},
            detected_at=self.detected_at,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.document())


def transition(*, was_failing: bool, failures: int, threshold: int) -> HealthType | None:
    """Pure: which notice, if any, one poll outcome implies (`failures` counts this poll)."""
    if failures == 0:
        return HealthType.RECOVERED if was_failing else None
    if not was_failing and failures >= threshold:
        return HealthType.FAILING
    return None


async def record_outcome(
    redis: Redis,
    *,
    source: str,
    provider: str,
    error: str | None,
    at: datetime,
    threshold: int,
    routes: Sequence[Route],
    also: Callable[[Pipeline], None] | None = None,
) -> HealthEvent | None:
    """Updates the source's streak and health state; publishes a notice on a transition.
    `also` queues the poll's other bookkeeping into the same transaction (one round trip)."""
    meta = keys.meta(source)
    error = scrub_optional(error)
    async with redis.pipeline(transaction=True) as pipe:
        if also is not None:
            also(pipe)
        before = len(pipe)
        pipe.hget(meta, "health")
        if error is None:
            pipe.hset(meta, "consecutive_failures", "0")
            pipe.hget(meta, "consecutive_failures")
        else:
            pipe.hincrby(meta, "consecutive_failures", 1)
        replies = (await pipe.execute())[before:]
    was_failing = replies[0] == "failing"
    failures = 0 if error is None else int(replies[1])
    notice = transition(was_failing=was_failing, failures=failures, threshold=threshold)
    if notice is None:
        return None
    return await _announce(
        redis, notice, source=source, provider=provider, failures=failures, error=error, at=at,
        routes=routes,
    )  # fmt: skip


def queue_success(batch: Batch, *, source: str) -> int:
    """`record_outcome` of a successful poll, queued on the poll's last commit (the same
    atomic step): the streak ends and the health state is read back. Returns the index of
    that read in `batch.read_back`; pass the value to `settle_success` once committed."""
    meta = keys.meta(source)
    slot = batch.hget(meta, "health")
    batch.hset(meta, "consecutive_failures", "0")
    return slot


async def settle_success(
    redis: Redis,
    *,
    health: str,
    source: str,
    provider: str,
    at: datetime,
    routes: Sequence[Route],
) -> HealthEvent | None:
    """Publishes the recovery, if the source was failing (`health` as `queue_success` read it)."""
    notice = transition(was_failing=health == "failing", failures=0, threshold=1)
    if notice is None:
        return None
    return await _announce(
        redis, notice, source=source, provider=provider, failures=0, error=None, at=at,
        routes=routes,
    )  # fmt: skip


async def _announce(
    redis: Redis,
    notice: HealthType,
    *,
    source: str,
    provider: str,
    failures: int,
    error: str | None,
    at: datetime,
    routes: Sequence[Route],
) -> HealthEvent:
    """A transition: the new health state, and its notice in the outbox."""
    meta = keys.meta(source)
    epoch = await redis.hincrby(meta, "health_epoch", 1)  # type: ignore[misc]
    await redis.hset(meta, "health", "failing" if notice is HealthType.FAILING else "ok")  # type: ignore[misc]
    # The epoch restarts when Redis loses its data; the incarnation (or, before any baseline,
    # fresh randomness) keeps ids after a loss from repeating earlier ones.
    incarnation = await redis.hget(meta, "incarnation") or secrets.token_hex(8)  # type: ignore[misc]
    event = HealthEvent(
        id=event_id(
            source=source,
            enrollment_id="",
            event_type=notice,
            change_key=f"{incarnation}|{epoch}",
        ),
        type=notice,
        source=source,
        provider=provider,
        consecutive_failures=failures,
        error=error,
        detected_at=at,
    )
    await publish(redis, event, routes=routes, now_ms=int(at.timestamp() * 1000))
    return event
