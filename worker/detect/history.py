"""One enrollment's stored history: what an observation makes of it. Pure.

The store hands over what it held (decoded) for an enrollment whose state changed;
`observe` says what to store instead and which events fire. Event ids are keyed by the
enrollment's own history (life and rev, committed with its state), see worker/events.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.detect.diff import Marks, transitions
from worker.enrollment import Enrollment, State, Status
from worker.events import EventType
from worker.store import codec


@dataclass(frozen=True, slots=True)
class Observed:
    stored: codec.Stored  # what to store instead (the store encodes it)
    new: bool  # nothing was tracked under its id (or only a tombstone)
    revived: bool  # it was a tombstone: re-enrolled after an absence removal
    previous: State | None  # what the events say it was (None: new in this life)
    events: list[EventType]
    change_key: str  # the events' id material (worker/events.py)


@dataclass(frozen=True, slots=True)
class _Life:
    """Where one enrollment stands in its history before this observation."""

    number: int
    rev: int
    previous: State | None  # None: nothing known in this life (a new enrollment)
    marks: Marks


def _life(known: codec.Stored | None, current: State) -> _Life:
    if known is None:
        return _Life(0, 0, None, Marks())
    if known.gone:  # re-enrolled after an absence removal: a new life
        return _Life(known.life + 1, 0, None, Marks())
    if known.state.status is Status.REMOVED and current.status is not Status.REMOVED:
        # Back from the provider's own removed status: a new life, whose flags may fire again.
        return _Life(known.life + 1, 0, known.state, Marks())
    marks = Marks(high_step=known.high_step, fired=known.fired).seeing(known.state)
    return _Life(known.life, known.rev, known.state, marks)


def observe(
    enrollment: Enrollment, *, after: str, known: codec.Stored | None, emitting: bool
) -> Observed:
    """`enrollment` (whose codec.encode_state is `after`) seen where `known` was stored.
    `emitting` is false for the silent baseline: stored, no events, no new rev."""
    state = enrollment.state
    life = _life(known, state)
    previous = life.previous
    before = codec.encode_state(previous) if previous else ""
    changed = emitting and before != after
    rev = life.rev + 1 if changed else life.rev
    marks = life.marks.seeing(state)
    stored = codec.Stored(
        state=state,
        sequence_id=enrollment.sequence.id,
        contact_id=enrollment.contact.id,
        contact_type=enrollment.contact.type,
        life=life.number,
        rev=rev,
        high_step=marks.high_step,
        fired=marks.fired,
    )
    seen = life.marks if previous else None
    return Observed(
        stored=stored,
        new=known is None or known.gone,
        revived=known is not None and known.gone,
        previous=previous,
        events=transitions(previous, state, seen=seen) if changed else [],
        # In the text format, so ids survive a change of the stored format (events.py).
        change_key=(
            f"{life.number}.{rev}|{codec.state_text(previous) if previous else ''}"
            f"|{codec.state_text(state)}"
        ),
    )
