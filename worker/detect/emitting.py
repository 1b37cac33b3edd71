"""A poll's events and notices: each added to the poll's commit and counted in its result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from worker.delivery.outbox import Route, destinations, enqueue
from worker.detect import notices
from worker.detect.result import PollResult
from worker.enrollment import Contact, SequenceRef, State
from worker.events import Event, EventType, HealthType, event_id
from worker.store.batch import Batch
from worker.store.state import ListingMeta, StateStore
from worker.store.sweep import Removal

# Named for the poll whose lines these are (worker/detect/pipeline.py).
log = structlog.get_logger("seqwatch.pipeline")


@dataclass(frozen=True, slots=True, kw_only=True)
class Emitter:
    """What one listing of one source announces."""

    source: str
    provider: str
    meta: ListingMeta
    routes: Sequence[Route]
    now: Callable[[], datetime]
    result: PollResult
    # Event type -> the destinations that want it: the routes do not change during a poll.
    _targets: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def event(
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
        targets = self._targets.get(event_type)
        if targets is None:
            targets = self._targets[event_type] = destinations(
                self.routes, source=self.source, event_type=event_type
            )
        event = Event(
            id=event_id(
                source=self.source,
                enrollment_id=enrollment_id,
                event_type=event_type,
                change_key=f"{self.meta.incarnation}|{change_key}",
            ),
            type=event_type,
            source=self.source,
            provider=self.provider,
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
            targets=targets,
        )
        self.result.events += 1
        self.result.event_ids.append(event.id)
        self.result.by_type[event.type.value] += 1

    def removals(self, batch: Batch, removals: Sequence[Removal]) -> None:
        """The sweep's removals (worker/store/sweep.py), as `removed` events."""
        for removal in removals:
            stored = removal.stored
            self.event(
                batch,
                event_type=EventType.REMOVED,
                enrollment_id=removal.enrollment_id,
                sequence=SequenceRef(id=stored.sequence_id or ""),
                contact=Contact(id=stored.contact_id, type=stored.contact_type),
                previous=stored.state,
                current=None,
                change_key=removal.change_key,
            )

    def removals_held(self, batch: Batch, *, store: StateStore, absent: int, tracked: int) -> None:
        """A suspect mass removal: recorded for `status`; announced once per episode."""
        at = self.now()
        store.set_meta(batch, "removals_held", f"{absent}|{tracked}|{at.timestamp()!r}")
        log.warning(
            "removals_held", source=self.source, absent=absent, tracked=tracked,
            listed=self.result.listed,
        )  # fmt: skip
        if self.meta.removals_held:
            return
        notice = notices.SourceNotice(
            id=event_id(
                source=self.source,
                enrollment_id="",
                event_type=HealthType.REMOVALS_HELD,
                change_key=f"{self.meta.incarnation}|{self.meta.generation}|{absent}",
            ),
            type=HealthType.REMOVALS_HELD,
            source=self.source,
            provider=self.provider,
            detected_at=at,
            details={"absent": absent, "tracked": tracked, "listed": self.result.listed},
        )
        self.result.deliveries += notices.add(batch, notice, routes=self.routes)
