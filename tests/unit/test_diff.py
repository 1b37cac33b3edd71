"""worker.detect.diff: every row of SPEC §5's event table, and the 36 status pairs."""

from __future__ import annotations

from itertools import product

import pytest

from worker.detect.diff import Marks, status_event, transitions
from worker.enrollment import State, Status
from worker.events import EventType as E

P, A, S, B, F, R = (
    Status.PENDING,
    Status.ACTIVE,
    Status.PAUSED,
    Status.BLOCKED,
    Status.FINISHED,
    Status.REMOVED,
)

# Written out by hand from SPEC §5 (not derived from the code under test).
STATUS_TABLE: dict[tuple[Status, Status], E | None] = {
    # from pending
    (P, P): None,
    (P, A): E.STATUS_CHANGED,
    (P, S): E.PAUSED,
    (P, B): E.PAUSED,
    (P, F): E.FINISHED,
    (P, R): E.REMOVED,
    # from active
    (A, P): E.STATUS_CHANGED,
    (A, A): None,
    (A, S): E.PAUSED,
    (A, B): E.PAUSED,
    (A, F): E.FINISHED,
    (A, R): E.REMOVED,
    # from paused
    (S, P): E.STATUS_CHANGED,
    (S, A): E.RESUMED,
    (S, S): None,
    (S, B): E.STATUS_CHANGED,
    (S, F): E.FINISHED,
    (S, R): E.REMOVED,
    # from blocked
    (B, P): E.STATUS_CHANGED,
    (B, A): E.RESUMED,
    (B, S): E.STATUS_CHANGED,
    (B, B): None,
    (B, F): E.FINISHED,
    (B, R): E.REMOVED,
    # from finished
    (F, P): E.STATUS_CHANGED,
    (F, A): E.STATUS_CHANGED,
    (F, S): E.STATUS_CHANGED,
    (F, B): E.STATUS_CHANGED,
    (F, F): None,
    (F, R): E.REMOVED,
    # from removed
    (R, P): E.STATUS_CHANGED,
    (R, A): E.STATUS_CHANGED,
    (R, S): E.STATUS_CHANGED,
    (R, B): E.STATUS_CHANGED,
    (R, F): E.FINISHED,
    (R, R): None,
}


def st(
    status: Status = A,
    *,
    raw_status: str | None = None,
    step: int | None = 1,
    step_id: str | None = None,
    replied: bool | None = False,
    bounced: bool | None = False,
    opted_out: bool | None = False,
) -> State:
    return State(
        status=status,
        raw_status=status.value if raw_status is None else raw_status,
        step=step,
        step_id=step_id,
        replied=replied,
        bounced=bounced,
        opted_out=opted_out,
    )


def test_status_table_covers_all_36_pairs() -> None:
    assert set(STATUS_TABLE) == set(product(Status, Status))
    assert len(STATUS_TABLE) == 36


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [(p, c, e) for (p, c), e in STATUS_TABLE.items()],
    ids=[f"{p}->{c}" for p, c in STATUS_TABLE],
)
def test_status_event(previous: Status, current: Status, expected: E | None) -> None:
    assert status_event(previous, current) is expected


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [(p, c, e) for (p, c), e in STATUS_TABLE.items()],
    ids=[f"{p}->{c}" for p, c in STATUS_TABLE],
)
def test_status_only_change_yields_its_status_event(
    previous: Status, current: Status, expected: E | None
) -> None:
    """A change of status alone (raw_status too) yields exactly the status row's event."""
    assert transitions(st(previous), st(current)) == ([] if expected is None else [expected])


CASES: list[tuple[str, State | None, State, list[E]]] = [
    # enrolled
    ("enrolled", None, st(A), [E.ENROLLED]),
    ("enrolled-finished-replied", None, st(F, replied=True), [E.ENROLLED]),
    ("enrolled-no-step", None, st(P, step=None), [E.ENROLLED]),
    # step_advanced: only on increase, never with a None on either side
    ("step-1-to-2", st(step=1), st(step=2), [E.STEP_ADVANCED]),
    ("step-1-to-5", st(step=1), st(step=5), [E.STEP_ADVANCED]),
    ("step-same", st(step=3), st(step=3), []),
    ("step-decrease", st(step=3), st(step=2), []),
    ("step-none-to-2", st(step=None), st(step=2), []),
    ("step-2-to-none", st(step=2), st(step=None), []),
    ("step-none-to-none", st(step=None), st(step=None), []),
    # flags: only when the flag turns true
    ("replied-false-true", st(replied=False), st(replied=True), [E.REPLIED]),
    ("replied-none-true", st(replied=None), st(replied=True), [E.REPLIED]),
    ("replied-true-true", st(replied=True), st(replied=True), []),
    ("replied-true-false", st(replied=True), st(replied=False), []),
    ("replied-true-none", st(replied=True), st(replied=None), []),
    ("replied-false-none", st(replied=False), st(replied=None), []),
    ("replied-none-false", st(replied=None), st(replied=False), []),
    ("bounced-false-true", st(bounced=False), st(bounced=True), [E.BOUNCED]),
    ("bounced-none-true", st(bounced=None), st(bounced=True), [E.BOUNCED]),
    ("bounced-true-true", st(bounced=True), st(bounced=True), []),
    ("bounced-true-false", st(bounced=True), st(bounced=False), []),
    ("opted-false-true", st(opted_out=False), st(opted_out=True), [E.OPTED_OUT]),
    ("opted-none-true", st(opted_out=None), st(opted_out=True), [E.OPTED_OUT]),
    ("opted-true-true", st(opted_out=True), st(opted_out=True), []),
    ("opted-true-false", st(opted_out=True), st(opted_out=False), []),
    # paused / resumed
    ("paused-from-active", st(A), st(S), [E.PAUSED]),
    ("paused-from-pending", st(P), st(S), [E.PAUSED]),
    ("blocked-from-active", st(A), st(B), [E.PAUSED]),
    ("blocked-from-pending", st(P), st(B), [E.PAUSED]),
    ("resumed-from-paused", st(S), st(A), [E.RESUMED]),
    ("resumed-from-blocked", st(B), st(A), [E.RESUMED]),
    # finished / removed
    ("finished-from-active", st(A), st(F), [E.FINISHED]),
    ("finished-from-paused", st(S), st(F), [E.FINISHED]),
    ("removed-from-active", st(A), st(R), [E.REMOVED]),
    ("removed-from-finished", st(F), st(R), [E.REMOVED]),
    # status_changed: any other change of status
    ("paused-to-blocked", st(S), st(B), [E.STATUS_CHANGED]),
    ("blocked-to-paused", st(B), st(S), [E.STATUS_CHANGED]),
    ("pending-to-active", st(P), st(A), [E.STATUS_CHANGED]),
    ("finished-to-active", st(F), st(A), [E.STATUS_CHANGED]),
    ("removed-to-active", st(R), st(A), [E.STATUS_CHANGED]),
    ("active-to-pending", st(A), st(P), [E.STATUS_CHANGED]),
    # several events from one change, in table order
    ("replied-and-finished", st(A), st(F, replied=True), [E.REPLIED, E.FINISHED]),
    (
        "step-and-opted-and-paused",
        st(A, step=1),
        st(S, step=2, opted_out=True),
        [E.STEP_ADVANCED, E.OPTED_OUT, E.PAUSED],
    ),
    (
        "everything-at-once",
        st(A, step=1, replied=None, bounced=None, opted_out=None),
        st(R, step=4, replied=True, bounced=True, opted_out=True),
        [E.STEP_ADVANCED, E.REPLIED, E.BOUNCED, E.OPTED_OUT, E.REMOVED],
    ),
    ("bounced-and-blocked", st(A), st(B, bounced=True), [E.BOUNCED, E.PAUSED]),
    # unchanged, or changed only in fields that carry no event
    ("unchanged", st(A), st(A), []),
    ("unchanged-all-none", st(P, step=None, replied=None), st(P, step=None, replied=None), []),
    ("raw-status-only", st(S, raw_status="Paused"), st(S, raw_status="OutOfOffice"), []),
    ("step-id-only", st(step_id="s1"), st(step_id="s2"), []),
]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_transitions(previous: State | None, current: State, expected: list[E]) -> None:
    assert transitions(previous, current) == expected


def test_transitions_is_pure_and_repeatable() -> None:
    """Re-polling the same data produces nothing, however often it is asked."""
    before, after = st(A, step=1), st(F, step=2, replied=True)
    first = transitions(before, after)
    assert transitions(before, after) == first
    assert transitions(after, after) == []


def test_flags_fire_once_per_life_and_steps_only_above_the_high_water_mark() -> None:
    fresh = State(status=A, raw_status="Active", step=3, opted_out=True, replied=False)
    marks = Marks().seeing(fresh)
    stale = State(status=A, raw_status="Active", step=2, opted_out=False, replied=False)
    assert transitions(fresh, stale, seen=marks) == []  # a stale page: silent
    marks = marks.seeing(stale)
    assert (marks.high_step, marks.fired) == (3, frozenset({"opted_out"}))
    back = State(status=A, raw_status="Active", step=3, opted_out=True, replied=True)
    assert transitions(stale, back, seen=marks) == [E.REPLIED]  # only what is new
    further = State(status=A, raw_status="Active", step=4, opted_out=True, replied=True)
    assert transitions(back, further, seen=marks.seeing(back)) == [E.STEP_ADVANCED]
