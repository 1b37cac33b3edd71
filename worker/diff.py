"""The transition table (SPEC §5): (previous, current) state -> event types. Pure."""

from __future__ import annotations

from worker.enrollment import State, Status
from worker.events import EventType

_RUNNING = frozenset({Status.PENDING, Status.ACTIVE})
_HALTED = frozenset({Status.PAUSED, Status.BLOCKED})


def _turned_true(previous: bool | None, current: bool | None) -> bool:
    return current is True and previous is not True


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


def transitions(previous: State | None, current: State) -> list[EventType]:
    """Events implied by one enrollment going from `previous` (None: unknown) to `current`."""
    if previous is None:
        return [EventType.ENROLLED]
    found: list[EventType] = []
    if previous.step is not None and current.step is not None and current.step > previous.step:
        found.append(EventType.STEP_ADVANCED)
    if _turned_true(previous.replied, current.replied):
        found.append(EventType.REPLIED)
    if _turned_true(previous.bounced, current.bounced):
        found.append(EventType.BOUNCED)
    if _turned_true(previous.opted_out, current.opted_out):
        found.append(EventType.OPTED_OUT)
    status = status_event(previous.status, current.status)
    if status is not None:
        found.append(status)
    return found
