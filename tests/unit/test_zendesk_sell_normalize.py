"""Zendesk Sell normalization (SPEC §5; records from providers/README.md §1.9)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from worker.detect.diff import transitions
from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.errors import MalformedResponse
from worker.events import EventType
from worker.normalize import NORMALIZERS, zendesk_sell
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage
from worker.sources.zendesk_sell import SEQUENCE_NAMES

_DROP: Any = object()  # marks a field to delete from the example record

SEQUENCE = {
    "data": {
        "id": 21124,
        "name": "My sequence name",
        "steps_total": 3,
        "creator_id": 1700155,
        "created_at": "2020-06-03T11:08:12Z",
        "updated_at": "2020-06-03T11:08:12Z",
    },
    "meta": {"type": "sequence"},
}
FINISHED: dict[str, Any] = {
    "id": 92593,
    "actor_id": 1700155,
    "resource_type": "lead",
    "resource_id": 1988695232,
    "created_at": "2020-06-03T11:08:42Z",
    "sequence": SEQUENCE,
    "state": "finished",
    "previously_executed_step_position": 1,
    "enrollment_steps": {"items": [], "meta": {"type": "collection", "count": 0}},
    "finished_at": "2020-06-03T11:09:18Z",
    "finished_reason": "manual",
    "finished_actor_id": 1700155,
}
ACTIVE: dict[str, Any] = {
    **FINISHED,
    "id": 92594,
    "resource_id": 1988695233,
    "created_at": "2020-06-03T11:09:25Z",
    "state": "active",
    "previously_executed_step_position": 0,
    "finished_at": None,
    "finished_reason": None,
    "finished_actor_id": None,
}
PAGE = RawPage(records=[FINISHED, ACTIVE], where="sequence enrollments page 1")


def sell(record: dict[str, Any], *, page: RawPage = PAGE) -> Enrollment:
    return zendesk_sell.normalize(record, page=page)


def sell_with(base: dict[str, Any] = ACTIVE, **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def test_example_records() -> None:
    assert sell(FINISHED) == Enrollment(
        enrollment_id="92593",
        sequence=SequenceRef(id="21124", name="My sequence name", steps_total=3),
        contact=Contact(id="1988695232", email=None, name=None, company=None, type="lead"),
        state=State(
            status=Status.FINISHED,
            raw_status="finished",
            step=2,
            step_id=None,
            replied=None,
            bounced=None,
            opted_out=None,
            reason="manual",
        ),
        updated_at=None,
    )
    active = sell(ACTIVE)
    assert active.enrollment_id == "92594"
    assert active.state == State(status=Status.ACTIVE, raw_status="active", step=1)
    assert active.contact == Contact(id="1988695233", type="lead")


def test_is_registered() -> None:
    assert NORMALIZERS["zendesk_sell"](FINISHED, page=PAGE) == sell(FINISHED)


def test_finished_reason_travels_in_the_event_state_only_when_set() -> None:
    assert sell(FINISHED).state.as_dict()["reason"] == "manual"
    assert "reason" not in sell(ACTIVE).state.as_dict()
    other = sell(sell_with(FINISHED, finished_reason="replied"))
    # An undocumented reason is kept as text; it never sets a flag Sell does not expose.
    assert other.state.reason == "replied"
    assert (other.state.replied, other.state.bounced, other.state.opted_out) == (None,) * 3


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("active", Status.ACTIVE),
        ("blocked", Status.BLOCKED),
        ("finished", Status.FINISHED),
        ("Active", Status.ACTIVE),
        ("BLOCKED", Status.BLOCKED),
    ],
)
def test_status_table(raw: str, status: Status) -> None:
    state = sell(sell_with(state=raw)).state
    assert state.status is status
    assert state.raw_status == raw


@pytest.mark.parametrize("raw", ["paused", "scheduled", "", "SNOOZED_BY_VENDOR"])
def test_unknown_state_keeps_raw_and_maps_to_active(raw: str) -> None:
    """Documented in worker/normalize/zendesk_sell.py: still listed, so still running."""
    state = sell(sell_with(state=raw)).state
    assert state.status is Status.ACTIVE
    assert state.raw_status == raw


def test_unknown_state_with_finished_at_maps_to_finished() -> None:
    state = sell(sell_with(FINISHED, state="completed")).state
    assert state.status is Status.FINISHED
    assert state.raw_status == "completed"


@pytest.mark.parametrize(
    ("current", "previous", "step"),
    [
        (_DROP, 1, 2),  # the official fixture: previously_executed only
        (3, 1, 4),  # current_step_position wins where sent
        (0, _DROP, 1),  # the C# model only
        (None, 2, 3),
        (_DROP, _DROP, None),  # neither: unknown, never guessed
        (None, None, None),
        (-1, -1, None),  # a negative position means no step yet
        (-1, 0, 1),
    ],
)
def test_step(current: Any, previous: Any, step: int | None) -> None:
    record = sell_with(current_step_position=current, previously_executed_step_position=previous)
    assert sell(record).state.step == step
    assert sell(record).state.step_id is None


def test_a_step_appearing_or_vanishing_is_not_a_step_advance() -> None:
    without = sell(sell_with(previously_executed_step_position=_DROP)).state
    with_step = sell(sell_with(previously_executed_step_position=4)).state
    assert EventType.STEP_ADVANCED not in transitions(without, with_step)
    assert EventType.STEP_ADVANCED not in transitions(with_step, without)
    later = sell(sell_with(previously_executed_step_position=5)).state
    assert transitions(with_step, later) == [EventType.STEP_ADVANCED]


def test_blocking_and_resuming_are_pause_and_resume() -> None:
    active = sell(ACTIVE).state
    blocked = sell(sell_with(state="blocked")).state
    assert transitions(active, blocked) == [EventType.PAUSED]
    assert transitions(blocked, active) == [EventType.RESUMED]
    assert transitions(active, sell(FINISHED).state) == [
        EventType.STEP_ADVANCED,
        EventType.FINISHED,
    ]


def test_sequence_shapes() -> None:
    bare = sell(sell_with(sequence={"id": 7, "name": "Bare"}))
    assert bare.sequence == SequenceRef(id="7", name="Bare")
    flat = sell(sell_with(sequence=_DROP, sequence_id=8))
    assert flat.sequence == SequenceRef(id="8", name=None)


@pytest.mark.parametrize(
    ("value", "total"),
    [(3, 3), (1, 1), (_DROP, None), (None, None), (0, None), (-2, None), ("3", None), (True, None),
     (2.5, None)],
)  # fmt: skip
def test_steps_total_from_the_sequence_summary_describes_only(
    value: Any, total: int | None
) -> None:
    summary: dict[str, Any] = copy.deepcopy(SEQUENCE)
    if value is _DROP:
        del summary["data"]["steps_total"]
    else:
        summary["data"]["steps_total"] = value
    got = sell(sell_with(sequence=summary))
    assert got.sequence.steps_total == total  # an odd value is unknown, never a record error
    assert got.state == sell(ACTIVE).state  # descriptive: the diffed state is the same
    shown = {"steps_total": total} if total else {}  # the key only where known
    assert got.sequence.as_dict() == {"id": "21124", "name": "My sequence name", **shown}


def test_sequence_name_from_the_looked_up_names() -> None:
    page = RawPage(records=[], where="p", extra={SEQUENCE_NAMES: {"21124": "Looked up"}})
    unnamed = sell_with(sequence={"data": {"id": 21124}, "meta": {"type": "sequence"}})
    assert sell(unnamed, page=page).sequence == SequenceRef(id="21124", name="Looked up")
    assert sell(unnamed).sequence == SequenceRef(id="21124", name=None)
    # The record's own name wins.
    assert sell(ACTIVE, page=page).sequence.name == "My sequence name"


def test_string_ids_are_kept() -> None:
    got = sell(sell_with(id="e-1", resource_id="r-1"))
    assert got.enrollment_id == "e-1"
    assert got.contact.id == "r-1"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("id", _DROP, "id"),
        ("id", None, "id"),
        ("id", True, "id"),
        ("id", 1.5, "id"),
        ("state", _DROP, "state"),
        ("state", None, "state"),
        ("state", 3, "state"),
        ("resource_id", _DROP, "resource_id"),
        ("resource_id", {"id": 1}, "resource_id"),
        ("sequence", "21124", "sequence"),
        ("sequence", {"data": {"name": "x"}}, "sequence.data.id"),
        ("sequence", {"data": {"id": 1, "name": 5}}, "sequence.data.name"),
        ("sequence", _DROP, "sequence_id"),
        ("previously_executed_step_position", "1", "previously_executed_step_position"),
        ("current_step_position", 1.0, "current_step_position"),
        ("current_step_position", True, "current_step_position"),
        ("finished_reason", 7, "finished_reason"),
        ("finished_at", 0, "finished_at"),
    ],
)
def test_bad_fields_raise_naming_the_field(field: str, value: Any, named: str) -> None:
    record = sell_with(**{field: value})
    if field == "finished_at":
        record["state"] = "undocumented"  # only an unknown state reads finished_at
    with pytest.raises(RecordError, match=re.escape(repr(named))) as info:
        sell(record)
    assert isinstance(info.value, MalformedResponse)
