"""Poll one source: fetch -> normalize -> diff -> commit, page by page; then sweep absences."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.asyncio import Redis

from worker import codec, lease
from worker.batch import Batch
from worker.contacts import with_contacts
from worker.diff import transitions
from worker.enrollment import Contact, Enrollment, SequenceRef, Status
from worker.errors import MalformedResponse
from worker.events import Event, EventType, event_id
from worker.normalize import Normalizer
from worker.normalize.fields import RecordError
from worker.outbox import Route, enqueue
from worker.sources.base import RawPage, Source
from worker.state import ListingMeta, SeenIds, StateStore

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
    event_ids: list[str] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)


class LeaseBusy(Exception):
    """Another worker is polling this source right now."""


WATERMARK_MARGIN_S = 60.0


def next_watermark(
    *, previous: str | None, newest_seen: str | None, pages: int, listing_seconds: float
) -> str | None:
    """Where the next incremental listing starts (inclusive).

    A one-page listing saw a consistent snapshot: its newest `updated_at` is exact. A longer
    listing may have passed a record on an early page that changed afterwards while a later
    page showed something newer still; stepping back by the listing's own duration (a length
    of time, never our clock's reading) plus a margin lists such records again, and the diff
    makes the repeats silent.
    """
    if newest_seen is None or pages <= 1:
        return _later(previous, newest_seen)
    overlap = timedelta(seconds=listing_seconds + WATERMARK_MARGIN_S)
    stepped = datetime.fromisoformat(newest_seen) - overlap
    back = stepped.isoformat().replace("+00:00", "Z")
    return _later(previous, back)


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if datetime.fromisoformat(a) >= datetime.fromisoformat(b) else b


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
    ) -> None:
        self.redis = redis
        self.rt = runtime
        self.routes = routes
        self.lease = held
        self.meta = meta
        self.now = now
        self.store = StateStore(redis, source=runtime.name)
        self.result = PollResult(source=runtime.name, baseline=not meta.baseline_done)
        self.watermark: str | None = None
        self.started = time.monotonic()
        # Only a complete listing after the baseline can reveal absences; only then track ids.
        self.seen: SeenIds | None = None

    async def commit(self, batch: Batch) -> None:
        await batch.commit(
            self.redis, lease_key=self.lease.key, token=self.lease.token, ttl_ms=self.lease.ttl_ms
        )

    def _emit(
        self,
        batch: Batch,
        *,
        event_type: EventType,
        enrollment_id: str,
        sequence: SequenceRef,
        contact: Contact,
        previous: codec.Stored | None,
        current: Enrollment | None,
        change_key: str,
    ) -> None:
        detected = self.now()
        event = Event(
            id=event_id(
                source=self.rt.name,
                enrollment_id=enrollment_id,
                event_type=event_type,
                change_key=change_key,
            ),
            type=event_type,
            source=self.rt.name,
            provider=self.rt.provider,
            enrollment_id=enrollment_id,
            sequence=sequence,
            contact=contact,
            previous=previous.state if previous else None,
            current=current.state if current else None,
            detected_at=detected,
        )
        self.result.deliveries += enqueue(
            batch, event, routes=self.routes, now_ms=int(detected.timestamp() * 1000)
        )
        self.result.events += 1
        self.result.event_ids.append(event.id)
        self.result.by_type[event.type.value] += 1

    async def page(self, page: RawPage) -> None:
        # Normalize the whole page first: one bad record fails the page before anything is written.
        current = {
            e.enrollment_id: e for e in (self.rt.normalize(r, page=page) for r in page.records)
        }
        stored = await self.store.load(current)
        if self.meta.baseline_done:  # a baseline emits nothing, so it labels nothing
            current = await with_contacts(
                self.redis, self.rt.source, name=self.rt.name, current=current, stored=stored
            )
        batch = Batch()
        events_before = self.result.events
        new = 0
        for enrollment_id, enrollment in current.items():
            if self.seen is not None:
                self.seen.add(enrollment_id)
            self.watermark = _later(self.watermark, enrollment.updated_at)
            after = codec.encode_state(enrollment.state)
            value = stored.get(enrollment_id)
            if value is not None and codec.unchanged(value, after):
                continue  # the common case: no decode, no write
            previous = codec.decode(value, enrollment_id=enrollment_id) if value else None
            before = codec.encode_state(previous.state) if previous else ""
            birth, rev = (previous.birth, previous.rev) if previous else (self.meta.epoch, 0)
            changed = self.meta.baseline_done and before != after
            if changed:
                rev += 1
            self.store.put(
                batch,
                enrollment_id,
                codec.encode(
                    enrollment.state,
                    enrollment_id=enrollment_id,
                    sequence_id=enrollment.sequence.id,
                    contact_id=enrollment.contact.id,
                    contact_type=enrollment.contact.type,
                    birth=birth,
                    rev=rev,
                ),
            )
            new += previous is None
            if not changed:
                continue
            # Keyed by the enrollment's own stored history (committed with it), not by the
            # listing generation: after a Redis rollback that lost this commit, the change is
            # detected again from the same stored record and so gets the same id.
            change_key = f"{birth}.{rev}|{before}|{after}"
            for event_type in transitions(previous.state if previous else None, enrollment.state):
                self._emit(
                    batch,
                    event_type=event_type,
                    enrollment_id=enrollment_id,
                    sequence=enrollment.sequence,
                    contact=enrollment.contact,
                    previous=previous,
                    current=enrollment,
                    change_key=change_key,
                )
        self.store.count(batch, "tracked", new)
        self.store.count(batch, "events_total", self.result.events - events_before)
        if len(batch):
            await self.commit(batch)
        self.result.pages += 1
        self.result.enrollments += len(current)

    async def finish(self, *, full: bool, started_at: float) -> None:
        """The listing completed: sweep absences (full listings only) and record bookkeeping."""
        batch = Batch()
        events_before = self.result.events
        if full and self.meta.baseline_done and self.seen is not None:
            await self._sweep(batch, self.seen)
        if full:
            self.store.set_meta(batch, "last_full_at", repr(started_at))
        self.store.set_meta(batch, "baseline", "1")
        watermark = next_watermark(
            previous=self.meta.watermark,
            newest_seen=self.watermark,
            pages=self.result.pages,
            listing_seconds=time.monotonic() - self.started,
        )
        if watermark is not None:
            self.store.set_meta(batch, "watermark", watermark)
        self.store.count(batch, "events_total", self.result.events - events_before)
        await self.commit(batch)

    async def _sweep(self, batch: Batch, seen: SeenIds) -> None:
        """Absent once: marked. Absent from two consecutive complete listings: removed."""
        gone = 0
        async for enrollment_id, stored in self.store.unseen(seen):
            if not stored.missed:
                self.store.put(
                    batch,
                    enrollment_id,
                    codec.encode(
                        stored.state,
                        enrollment_id=enrollment_id,
                        sequence_id=stored.sequence_id,
                        contact_id=stored.contact_id,
                        contact_type=stored.contact_type,
                        birth=stored.birth,
                        rev=stored.rev,
                        missed=True,
                    ),
                )
                continue
            self.store.forget(batch, enrollment_id)
            gone += 1
            if stored.state.status is Status.REMOVED:
                continue  # already reported when the provider flagged it
            self._emit(
                batch,
                event_type=EventType.REMOVED,
                enrollment_id=enrollment_id,
                sequence=SequenceRef(id=stored.sequence_id or ""),
                contact=Contact(id=stored.contact_id, type=stored.contact_type),
                previous=stored,
                current=None,
                change_key=(
                    f"{stored.birth}.{stored.rev + 1}|{codec.encode_state(stored.state)}|absent"
                ),
            )
        self.store.count(batch, "tracked", -gone)
        # Whatever is forgotten may come back: as a new birth, in a new epoch.
        self.store.count(batch, "epoch", 1 if gone else 0)
        self.result.removed = gone


async def poll_source(
    redis: Redis,
    runtime: SourceRuntime,
    *,
    routes: Sequence[Route],
    now: Callable[[], datetime],
    lease_ttl_ms: int = LEASE_TTL_MS,
) -> PollResult:
    """One listing of `runtime`; raises SourceError (nothing past the failing page is written)."""
    held = await lease.try_acquire(redis, source=runtime.name, ttl_ms=lease_ttl_ms)
    if held is None:
        raise LeaseBusy(f"source {runtime.name!r} is being polled by another worker")
    try:
        async with lease.kept_alive(redis, held):
            meta = await StateStore(redis, source=runtime.name).begin_listing()
            started_at = time.time()
            full = (
                not runtime.source.incremental
                or not meta.baseline_done
                or meta.watermark is None
                or meta.last_full_at is None
                or started_at - meta.last_full_at >= runtime.full_sync_interval
            )
            poll = _Poll(redis, runtime, routes=routes, held=held, meta=meta, now=now)
            poll.result.full_listing = full
            if full and meta.baseline_done:
                poll.seen = SeenIds()
            updated_after = None if full else meta.watermark
            async for page in runtime.source.pages(updated_after=updated_after):
                try:
                    await poll.page(page)
                except RecordError as exc:
                    raise MalformedResponse(
                        exc.detail, source=runtime.name, where=page.where
                    ) from None
            await poll.finish(full=full, started_at=started_at)
            return poll.result
    finally:
        await lease.release(redis, held)
