"""Poll one source, page by page: read (worker/detect/reading), ask the store what changed, observe
the changes (worker/detect/history), commit them with their events; then sweep absences
(worker/detect/sweep)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from redis.asyncio import Redis

from worker.delivery.outbox import Route, enqueue
from worker.detect import continuity, history, notices
from worker.detect.contacts import with_contacts
from worker.detect.continuity import SourceMemory
from worker.detect.opening import open_poll
from worker.detect.quarantine import Quarantine
from worker.detect.reading import PageReader
from worker.detect.sweep import sweep
from worker.detect.watermark import next_watermark
from worker.enrollment import Contact, SequenceRef, State
from worker.events import Event, EventType, HealthType, event_id
from worker.normalize import Normalizer
from worker.sources.base import RawPage, Source
from worker.sources.memory import RedisMemory
from worker.sources.shared_limiter import SharedRateLimiter
from worker.store import keys, lease
from worker.store.batch import Batch
from worker.store.state import ListingMeta, SeenIds, StateStore

log = structlog.get_logger("seqwatch.pipeline")

# Renewed every third of it while a poll runs; a holder that dies frees the source this soon.
LEASE_TTL_MS = 15_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRuntime:
    """Everything the pipeline needs about one configured source."""

    name: str
    provider: str
    source: Source
    normalize: Normalizer
    full_sync_interval: float = 86_400.0
    # What this process last knew of the source's stored history (worker/detect/continuity.py).
    memory: SourceMemory = field(default_factory=SourceMemory, compare=False)
    # The source's shared quota and Redis memory, when it has them (worker/app/deps.py): the
    # poll's opening takes its first request's slot and reads the memory (one round trip each
    # less per poll).
    limiter: SharedRateLimiter | None = field(default=None, compare=False)
    provider_memory: RedisMemory | None = field(default=None, compare=False)


@dataclass(slots=True, kw_only=True)
class PollResult:
    source: str
    pages: int = 0
    enrollments: int = 0
    events: int = 0
    deliveries: int = 0
    removed: int = 0
    baseline: bool = False
    full_listing: bool = True
    listed: int = 0  # records the listing returned, quarantined ones included
    quarantined: int = 0  # records this listing set aside (status counts those still bad)
    removals_held: int = 0  # absences not acted on: a suspect mass removal (SPEC §5)
    state_lost: str | None = None  # continuity.REASONS key when a loss was found before it
    event_ids: list[str] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)


class LeaseBusy(Exception):
    """Another worker is polling this source right now."""


class _Poll:
    """One listing of one source under one lease."""

    def __init__(
        self,
        redis: Redis,
        runtime: SourceRuntime,
        *,
        routes: Sequence[Route],
        held: lease.Lease,
        meta: ListingMeta,
        now: Callable[[], datetime],
        store: StateStore,
        quarantine: Quarantine,
        closing: Callable[[Batch], None] | None = None,
    ) -> None:
        self.redis = redis
        self.closing = closing
        self.rt = runtime
        self.routes = routes
        self.lease = held
        self.meta = meta
        self.now = now
        self.store = store
        self.result = PollResult(source=runtime.name, baseline=not meta.baseline_done)
        self.started = time.monotonic()
        # Only a complete listing after the baseline can reveal absences; only then track ids.
        self.seen: SeenIds | None = None
        self.quarantine = quarantine
        self.reader = PageReader(runtime.normalize, self.quarantine)
        # Sequences the source chose not to list this poll: their stored enrollments are kept.
        self.skipped: set[str] = set()
        self.released = False  # by the last commit

    async def commit(self, batch: Batch, *, release: bool = False) -> None:
        # The commit serial goes last: its value is what the commit returns
        # (worker/detect/continuity).
        batch.hincr(keys.meta(self.rt.name), "serial", 1)
        if release:
            batch.release_lease()
        serial = await batch.commit(
            self.redis, lease_key=self.lease.key, token=self.lease.token, ttl_ms=self.lease.ttl_ms
        )
        self.rt.memory.committed(serial)
        self.released = release

    def _emit(
        self,
        batch: Batch,
        *,
        event_type: EventType,
        enrollment_id: str,
        sequence: SequenceRef,
        contact: Contact,
        previous: State | None,
        current: State | None,
        change_key: str,
    ) -> None:
        detected = self.now()
        event = Event(
            id=event_id(
                source=self.rt.name,
                enrollment_id=enrollment_id,
                event_type=event_type,
                change_key=f"{self.meta.incarnation}|{change_key}",
            ),
            type=event_type,
            source=self.rt.name,
            provider=self.rt.provider,
            enrollment_id=enrollment_id,
            sequence=sequence,
            contact=contact,
            previous=previous,
            current=current,
            detected_at=detected,
        )
        self.result.deliveries += enqueue(
            batch,
            event,
            routes=self.routes,
            now_ms=int(detected.timestamp() * 1000),
            order=self.result.events,  # this poll's events so far: detection order
        )
        self.result.events += 1
        self.result.event_ids.append(event.id)
        self.result.by_type[event.type.value] += 1

    async def page(self, page: RawPage) -> None:
        read = self.reader.read(page, seen=self.seen)
        states = read.states
        stored = await self.store.changed(states, seen=self.seen)
        current = read.enrollments(stored, seen=self.seen)
        if self.meta.baseline_done:  # a baseline emits nothing, so it labels nothing
            current = await with_contacts(
                self.redis,
                self.rt.source,
                name=self.rt.name,
                current=current,
                stored={i: value for i, value in stored.items() if value is not None},
            )
        batch = Batch()
        self.quarantine.settle(batch, normalized=states)
        events_before = self.result.events
        new = revived = 0
        emit = self.meta.baseline_done  # a baseline stores silently
        for enrollment_id, enrollment in current.items():
            value = stored[enrollment_id]
            seen = history.observe(
                enrollment,
                after=states[enrollment_id],
                known=self.store.decode(value, enrollment_id=enrollment_id) if value else None,
                emitting=emit,
            )
            self.store.put(batch, enrollment_id, seen.value)
            new += seen.new
            revived += seen.revived
            for event_type in seen.events:
                self._emit(
                    batch,
                    event_type=event_type,
                    enrollment_id=enrollment_id,
                    sequence=enrollment.sequence,
                    contact=enrollment.contact,
                    previous=seen.previous,
                    current=enrollment.state,
                    change_key=seen.change_key,
                )
        self.store.count(batch, "tracked", new)
        self.store.count(batch, "tombstones", -revived)
        self.store.count(batch, "events_total", self.result.events - events_before)
        if len(batch):
            await self.commit(batch)
        self.result.pages += 1
        self.result.enrollments += len(states)
        self.result.listed += len(page.records)

    async def finish(self, *, full: bool, started_at: float) -> None:
        """The listing completed: sweep absences (full listings only) and record bookkeeping."""
        batch = Batch()
        events_before = self.result.events
        complete = full and not self.quarantine.unreadable
        self.result.full_listing = complete
        if complete and self.meta.baseline_done and self.seen is not None:
            await self._sweep(batch, self.seen)
        if full:
            self.store.set_meta(batch, "last_full_at", repr(started_at))
        self.store.set_meta(batch, "baseline", "1")
        batch.hdel(keys.meta(self.rt.name), "state_lost")  # the listing after a loss is done
        self.quarantine.summarize(batch, full=full)
        self.result.quarantined = self.quarantine.count
        watermark = next_watermark(
            previous=self.meta.watermark,
            newest_seen=self.reader.newest.text,
            pages=self.result.pages,
            listing_seconds=time.monotonic() - self.started,
        )
        if watermark is not None:
            self.store.set_meta(batch, "watermark", watermark)
        self.store.count(batch, "events_total", self.result.events - events_before)
        if self.closing is not None:
            self.closing(batch)  # the caller's bookkeeping rides on the same atomic step
        await self.commit(batch, release=True)

    async def _sweep(self, batch: Batch, seen: SeenIds) -> None:
        swept = await sweep(
            self.store, batch, seen, skipped=self.skipped, listed=self.result.listed
        )
        for removal in swept.removals:
            stored = removal.stored
            self._emit(
                batch,
                event_type=EventType.REMOVED,
                enrollment_id=removal.enrollment_id,
                sequence=SequenceRef(id=stored.sequence_id or ""),
                contact=Contact(id=stored.contact_id, type=stored.contact_type),
                previous=stored.state,
                current=None,
                change_key=removal.change_key,
            )
        self.result.removed = swept.gone
        self.result.removals_held = swept.absent if swept.held else 0
        if swept.held:
            self._hold(batch, absent=swept.absent, tracked=swept.tracked)
        elif self.meta.removals_held:
            batch.hdel(keys.meta(self.rt.name), "removals_held")

    def _hold(self, batch: Batch, *, absent: int, tracked: int) -> None:
        """A suspect mass removal: recorded for `status`; announced once per episode."""
        at = self.now()
        self.store.set_meta(batch, "removals_held", f"{absent}|{tracked}|{at.timestamp()!r}")
        log.warning(
            "removals_held", source=self.rt.name, absent=absent, tracked=tracked,
            listed=self.result.listed,
        )  # fmt: skip
        if self.meta.removals_held:
            return
        notice = notices.SourceNotice(
            id=event_id(
                source=self.rt.name,
                enrollment_id="",
                event_type=HealthType.REMOVALS_HELD,
                change_key=f"{self.meta.incarnation}|{self.meta.generation}|{absent}",
            ),
            type=HealthType.REMOVALS_HELD,
            source=self.rt.name,
            provider=self.rt.provider,
            detected_at=at,
            details={"absent": absent, "tracked": tracked, "listed": self.result.listed},
        )
        self.result.deliveries += notices.add(batch, notice, routes=self.routes)


async def poll_source(
    redis: Redis,
    runtime: SourceRuntime,
    *,
    routes: Sequence[Route],
    now: Callable[[], datetime],
    lease_ttl_ms: int = LEASE_TTL_MS,
    closing: Callable[[Batch], None] | None = None,
) -> PollResult:
    """One listing of `runtime`; raises SourceError (nothing past the failing page is written).
    `closing` adds the caller's writes to the listing's last commit (once, if it completes)."""
    store = StateStore(redis, source=runtime.name)
    quarantine = Quarantine(runtime.name)
    opening = await open_poll(
        redis,
        source=runtime.name,
        memory=runtime.memory,
        ttl_ms=lease_ttl_ms,
        store=store,
        quarantine=quarantine,
        limiter=runtime.limiter,
        provider_memory=runtime.provider_memory,
    )
    if opening is None:
        raise LeaseBusy(f"source {runtime.name!r} is being polled by another worker")
    held, meta = opening.held, opening.meta
    poll: _Poll | None = None
    try:
        async with lease.kept_alive(redis, held):
            lost = await continuity.settle(
                redis,
                opening.verdict,
                source=runtime.name,
                provider=runtime.provider,
                memory=runtime.memory,
                routes=routes,
                now=now(),
            )
            runtime.memory.incarnation = meta.incarnation
            started_at = time.time()
            full = (
                not runtime.source.incremental
                or not meta.baseline_done
                or meta.watermark is None
                or meta.last_full_at is None
                or started_at - meta.last_full_at >= runtime.full_sync_interval
            )
            poll = _Poll(
                redis,
                runtime,
                routes=routes,
                held=held,
                meta=meta,
                now=now,
                store=store,
                quarantine=quarantine,
                closing=closing,
            )
            poll.result.full_listing = full
            poll.result.state_lost = lost
            if full and meta.baseline_done:
                poll.seen = SeenIds()
            updated_after = None if full else meta.watermark
            async for page in runtime.source.pages(updated_after=updated_after):
                poll.skipped.update(page.skipped_sequences)
                await poll.page(page)
            await poll.finish(full=full, started_at=started_at)
            return poll.result
    finally:
        if runtime.limiter is not None:
            runtime.limiter.grant(False)  # a slot the poll did not use is not carried over
        if runtime.provider_memory is not None:
            runtime.provider_memory.prime(None)
        if poll is None or not poll.released:
            await lease.release(redis, held)
