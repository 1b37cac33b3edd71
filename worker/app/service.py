"""Operations shared by CLI commands and arq jobs: one poll, one delivery round, with logging."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from redis.asyncio.client import Pipeline

from worker.app.deps import Deps
from worker.delivery.deliver import DeliveryResult, deliver_destination
from worker.delivery.digest import deliver_digest
from worker.detect import continuity
from worker.detect.pipeline import PollResult, poll_source
from worker.errors import SourceError
from worker.events import HealthType
from worker.ops import health, metrics, progress
from worker.ops.health import record_outcome
from worker.ops.status import poll_record, queue_poll_record
from worker.sources.metering import RequestMeter, metering
from worker.store import keys
from worker.store.batch import Batch

log = structlog.get_logger("seqwatch")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _health(
    deps: Deps,
    name: str,
    *,
    error: str | None,
    now: datetime,
    tracker: progress.Progress,
    requests: int,
) -> None:
    """Records the poll (its outcome, its health streak, its progress gone) in one transaction;
    logs and publishes only transitions: failing after N failures, recovered on a success."""

    at = time.time()

    def bookkeeping(pipe: Pipeline) -> None:
        progress.forget(pipe, tracker)
        queue_poll_record(
            pipe, source=name, ok=error is None, at=at, error=error, requests=requests
        )

    notice = await record_outcome(
        deps.redis,
        source=name,
        provider=deps.sources[name].provider,
        error=error,
        at=now,
        threshold=deps.failure_thresholds[name],
        routes=deps.routes,
        also=bookkeeping,
    )
    if notice is None:
        return
    metrics.event_emitted(name, notice.type.value)
    if notice.type is HealthType.FAILING:
        log.error(
            "source_failing", source=name, consecutive_failures=notice.consecutive_failures,
            error=error,
        )  # fmt: skip
    else:
        log.info("source_recovered", source=name)


class _Closing:
    """A successful poll's bookkeeping (its outcome, its health streak, its progress gone),
    written by the listing's last commit: one atomic step and no round trip of its own."""

    def __init__(self, name: str, tracker: progress.Progress, requests: RequestMeter) -> None:
        self.name = name
        self.tracker = tracker
        self.requests = requests
        self.batch: Batch | None = None
        self.slot = 0

    def __call__(self, batch: Batch) -> None:
        self.batch = batch
        progress.forget_in(batch, self.tracker)
        fields, stale = poll_record(ok=True, at=time.time(), requests=self.requests.count)
        meta = keys.meta(self.name)
        if stale is not None:
            batch.hdel(meta, stale)
        for field_name, value in fields.items():
            batch.hset(meta, field_name, value)
        self.slot = health.queue_success(batch, source=self.name)

    @property
    def health(self) -> str | None:
        """The health state the commit read back (None: the bookkeeping was not written)."""
        return None if self.batch is None else self.batch.read_back[self.slot]


async def _settle(deps: Deps, name: str, closing: _Closing, *, now: datetime) -> None:
    """After a successful poll: announce a recovery; a poll whose last commit carried no
    bookkeeping (none today) records it the old way."""
    if closing.health is None:
        await _health(
            deps, name, error=None, now=now, tracker=closing.tracker,
            requests=closing.requests.count,
        )  # fmt: skip
        return
    notice = await health.settle_success(
        deps.redis, health=closing.health, source=name, provider=deps.sources[name].provider,
        at=now, routes=deps.routes,
    )  # fmt: skip
    if notice is not None:
        metrics.event_emitted(name, notice.type.value)
        log.info("source_recovered", source=name)


async def run_poll(deps: Deps, name: str, *, now: Callable[[], datetime] = utc_now) -> PollResult:
    """Poll one source and write its canonical log line; SourceError/LeaseBusy propagate."""
    runtime = deps.sources[name]
    started = time.monotonic()
    tracker = progress.Progress(source=name, started_at=time.time())
    token = metrics.polling_source.set(name)
    try:
        with metering() as requests:
            closing = _Closing(name, tracker, requests)
            result = await poll_source(
                deps.redis,
                progress.tracked(runtime, deps.redis, tracker),
                routes=deps.routes,
                now=now,
                closing=closing,
            )
    except SourceError as exc:
        metrics.poll_finished(name, ok=False, seconds=time.monotonic() - started)
        log.warning(
            "poll",
            source=name,
            provider=runtime.provider,
            outcome="failed",
            error=str(exc),
            error_kind=type(exc).__name__,
            requests=requests.count,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        await _health(
            deps, name, error=str(exc), now=now(), tracker=tracker, requests=requests.count
        )
        raise
    finally:
        metrics.polling_source.reset(token)
    metrics.poll_finished(
        name,
        ok=True,
        seconds=time.monotonic() - started,
        events=result.by_type,
        quarantined=result.quarantined,
    )
    await _settle(deps, name, closing, now=now())
    log.info(
        "poll",
        source=name,
        provider=runtime.provider,
        outcome="ok",
        baseline=result.baseline,
        full_listing=result.full_listing,
        pages=result.pages,
        enrollments=result.enrollments,
        events=result.events,
        removed=result.removed,
        quarantined=result.quarantined,
        removals_held=result.removals_held,
        requests=requests.count,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return result


async def check_continuity(deps: Deps, *, now: Callable[[], datetime] = utc_now) -> list[str]:
    """The daemon's tick: announces, between polls, any source whose stored state vanished or
    went back in time (worker/detect/continuity.py); returns the sources found so."""
    sources = [(name, rt.provider, rt.memory) for name, rt in deps.sources.items()]
    reasons = await continuity.verify_all(deps.redis, sources, routes=deps.routes, now=now())
    return [name for (name, _, _), reason in zip(sources, reasons, strict=True) if reason]


async def _queued(deps: Deps, destination: str) -> list[str]:
    """The sources with anything queued for `destination`, in one round trip. The daemon runs a
    delivery round every 5 s, and draining a source costs a lock, a read and a release even
    when its queue is empty: with many sources that was most of an idle worker's Redis work."""
    async with deps.redis.pipeline(transaction=False) as pipe:
        for source in deps.sources:
            pipe.exists(keys.due(source, destination))
        found = await pipe.execute()
    return [source for source, queued in zip(deps.sources, found, strict=True) if queued]


async def run_deliver(
    deps: Deps, name: str, *, clock: Callable[[], float] = time.time, settle_s: float = 0.0
) -> DeliveryResult:
    """One delivery round; `settle_s` > 0 lets a digest (Slack) wait for the burst to settle."""
    destination = deps.destinations[name]
    sources = await _queued(deps, name)
    if destination.notifier.max_batch > 1:  # Slack: one digest across sources
        result = await deliver_digest(
            deps.redis, destination, sources=sources, clock=clock, settle_s=settle_s
        )
    else:
        result = await deliver_destination(
            deps.redis, destination, sources=sources, clock=clock, stopping=deps.stopping.is_set
        )
    metrics.deliveries_settled(
        name, delivered=result.delivered, retrying=result.retrying, dead=result.dead
    )
    if result.delivered or result.failed:
        log.info(
            "deliver",
            destination=name,
            delivered=result.delivered,
            retrying=result.retrying,
            dead_lettered=result.dead,
            outcome="failed" if result.failed else "ok",
        )
    return result
