"""The transition table (SPEC §5): (previous, current) state -> event types. Pure.

Events are monotonic within one enrollment's life: `replied`, `bounced` and `opted_out` fire
once, `step_advanced` only above the highest step seen. `Marks` carries what has been seen, so
a stale page (a flag back to false, a step going back) is stored but its return stays silent.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.enrollment import State, Status
from worker.events import EventType

_RUNNING = frozenset({Status.PENDING, Status.ACTIVE})
_HALTED = frozenset({Status.PAUSED, Status.BLOCKED})
FLAGS: tuple[tuple[str, EventType], ...] = (
    ("replied", EventType.REPLIED),
    ("bounced", EventType.BOUNCED),
    ("opted_out", EventType.OPTED_OUT),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Marks:
    """The high-water marks of one life: highest step seen, flags that were ever true."""

    high_step: int | None = None
    fired: frozenset[str] = frozenset()

    def seeing(self, state: State) -> Marks:
        """These marks after observing `state`."""
        high = self.high_step
        if state.step is not None and (high is None or state.step > high):
            high = state.step
        fired = self.fired | {flag for flag, _ in FLAGS if getattr(state, flag) is True}
        return Marks(high_step=high, fired=frozenset(fired))


def status_event(previous: Status, current: Status) -> EventType | None:
    if previous == current:
        return None
    if current in _HALTED and previous in _RUNNING:
        return EventType.PAUSED
    if current == Status.ACTIVE and previous in _HALTED:
        return EventType.RESUMED
    if current == Status.FINISHED:
        return EventType.FINISHED
    if current == Status.REMOVED:
        return EventType.REMOVED
    return EventType.STATUS_CHANGED


def transitions(
    previous: State | None, current: State, *, seen: Marks | None = None
) -> list[EventType]:
    """Events implied by one enrollment going from `previous` (None: unknown) to `current`.

    `seen` are the marks of the life so far, `previous` included (default: `previous` alone).
    """
    if previous is None:
        return [EventType.ENROLLED]
    marks = seen if seen is not None else Marks().seeing(previous)
    found: list[EventType] = []
    if marks.high_step is not None and current.step is not None and current.step > marks.high_step:
        found.append(EventType.STEP_ADVANCED)
    for flag, event_type in FLAGS:
        if getattr(current, flag) is True and flag not in marks.fired:
            found.append(event_type)
    status = status_event(previous.status, current.status)
    if status is not None:
        found.append(status)
    return found
