"""One listing of one source under one lease: each page read, asked of the store, observed and
committed; at the end, the absence sweep and the listing's bookkeeping in the last commit."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from worker.delivery.outbox import Route
from worker.detect import history
from worker.detect.contacts import with_contacts
from worker.detect.emitting import Emitter
from worker.detect.quarantine import Quarantine
from worker.detect.reading import PageReader
from worker.detect.result import PollResult
from worker.detect.runtime import SourceRuntime
from worker.detect.watermark import next_watermark
from worker.sources.base import ContactLookup, RawPage
from worker.store import keys, lease
from worker.store.batch import Batch
from worker.store.seen import SeenIds
from worker.store.state import ListingMeta, StateStore


class Listing:
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
        self.lease = held
        self.meta = meta
        self.store = store
        self.result = PollResult(source=runtime.name, baseline=not meta.baseline_done)
        self.emitter = Emitter(
            source=runtime.name,
            provider=runtime.provider,
            meta=meta,
            routes=routes,
            now=now,
            result=self.result,
        )
        self.started = time.monotonic()
        # Only a complete listing after the baseline can reveal absences; only then track ids.
        self.seen: SeenIds | None = None
        self.quarantine = quarantine
        self.reader = PageReader(runtime.normalize, self.quarantine)
        # Sequences the source chose not to list this poll: their stored enrollments are kept.
        self.skipped: set[str] = set()
        self.released = False  # by the last commit
        self._looks_up: bool | None = None  # `_contact_lookup`, once asked

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

    async def page(self, page: RawPage) -> None:
        read = self.reader.read(page, seen=self.seen)
        states = read.states
        changes = await self.store.changed(states, seen=self.seen)
        known = changes.known
        current = read.enrollments(known, seen=self.seen)
        # A baseline emits nothing, so it labels nothing.
        if current and self.meta.baseline_done and (lookup := self._contact_lookup()):
            current = await with_contacts(
                self.redis, lookup, name=self.rt.name, current=current, quiet=changes.quiet
            )
        batch = Batch()
        self.quarantine.settle(batch, normalized=states)
        events_before = self.result.events
        new = revived = 0
        emit = self.meta.baseline_done  # a baseline stores silently
        for enrollment_id, enrollment in current.items():
            seen = history.observe(
                enrollment, after=states[enrollment_id], known=known[enrollment_id], emitting=emit
            )
            self.store.keep(batch, enrollment_id, seen.stored)
            new += seen.new
            revived += seen.revived
            for event_type in seen.events:
                self.emitter.event(
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

    def _contact_lookup(self) -> ContactLookup | None:
        """The source, if it looks contacts up (worker/detect/contacts.py). Asked once a
        listing, at its first change: a protocol check is slow through a wrapped source."""
        if self._looks_up is None:
            self._looks_up = isinstance(self.rt.source, ContactLookup)
        return cast("ContactLookup", self.rt.source) if self._looks_up else None

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
        swept = await self.store.sweep(batch, seen, skipped=self.skipped, listed=self.result.listed)
        self.emitter.removals(batch, swept.removals)
        self.result.removed = swept.gone
        self.result.removals_held = swept.absent if swept.held else 0
        if swept.held:
            self.emitter.removals_held(
                batch, store=self.store, absent=swept.absent, tracked=swept.tracked
            )
        elif self.meta.removals_held:
            batch.hdel(keys.meta(self.rt.name), "removals_held")
