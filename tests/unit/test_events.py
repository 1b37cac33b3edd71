"""worker.events: stable ids, the SPEC §6 document, timestamps and event-type globs."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from tests._event_schema import problems_of
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import (
    ALL_EVENT_TYPES,
    Event,
    EventType,
    event_id,
    format_timestamp,
    matches_any,
)

ID_ARGS = {
    "source": "reply-emea",
    "enrollment_id": "100:12345",
    "event_type": "enrollment.step_advanced",
    "change_key": "7|anf\x1f1\x1f\x1fActive|anf\x1f2\x1f\x1fActive",
}
DETECTED = datetime(2026, 11, 22, 13, 0, 5, 120_000, tzinfo=UTC)
STATE_KEYS = {"status", "raw_status", "step", "step_id", "replied", "bounced", "opted_out"}


def test_event_id_format() -> None:
    assert re.fullmatch(r"evt_[0-9a-f]{32}", event_id(**ID_ARGS))


def test_event_id_is_deterministic() -> None:
    assert event_id(**ID_ARGS) == event_id(**ID_ARGS)
    assert event_id(**ID_ARGS) == event_id(**dict(reversed(list(ID_ARGS.items()))))


@pytest.mark.parametrize("field", sorted(ID_ARGS))
def test_event_id_depends_on_every_input(field: str) -> None:
    changed = {**ID_ARGS, field: ID_ARGS[field] + "x"}
    assert event_id(**changed) != event_id(**ID_ARGS)


def test_event_id_keeps_field_boundaries() -> None:
    """Moving characters between inputs must not yield the same id."""
    a = event_id(source="ab", enrollment_id="c", event_type="t", change_key="k")
    b = event_id(source="a", enrollment_id="bc", event_type="t", change_key="k")
    assert a != b


def test_event_ids_differ_across_types_of_one_change() -> None:
    ids = {event_id(**{**ID_ARGS, "event_type": t}) for t in ALL_EVENT_TYPES}
    assert len(ids) == len(ALL_EVENT_TYPES)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (DETECTED, "2026-11-22T13:00:05.120Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 1_500, tzinfo=UTC), "2026-01-02T03:04:05.001Z"),
        # Other zones are converted to UTC, never printed with their offset.
        (
            datetime(2026, 11, 22, 14, 0, 5, 120_000, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-22T13:00:05.120Z",
        ),
        (
            datetime(2026, 12, 31, 20, 30, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2027-01-01T01:30:00.000Z",
        ),
    ],
)
def test_format_timestamp(moment: datetime, expected: str) -> None:
    assert format_timestamp(moment) == expected


ACTIVE1 = State(status=Status.ACTIVE, raw_status="Active", step=1, opted_out=False)
ACTIVE2 = State(status=Status.ACTIVE, raw_status="Active", step=2, opted_out=False)


def make_event(
    event_type: EventType = EventType.STEP_ADVANCED,
    *,
    previous: State | None = ACTIVE1,
    current: State | None = ACTIVE2,
    contact: Contact | None = None,
) -> Event:
    return Event(
        id="evt_0123456789abcdef0123456789abcdef",
        type=event_type,
        source="reply-emea",
        provider="replyio",
        enrollment_id="100:12345",
        sequence=SequenceRef(id="100", name="Q4 outbound"),
        contact=contact
        or Contact(
            id="12345",
            email="john.doe@company.com",
            name="John Doe",
            company="Tech Solutions Inc",
        ),
        previous=previous,
        current=current,
        detected_at=DETECTED,
    )


def test_document_matches_spec_example() -> None:
    state = {"status": "active", "raw_status": "Active", "step_id": None}
    flags = {"replied": None, "bounced": None, "opted_out": False}
    expected: dict[str, Any] = {
        "type": "enrollment.step_advanced",
        "timestamp": "2026-11-22T13:00:05.120Z",
        "data": {
            "id": "evt_0123456789abcdef0123456789abcdef",
            "source": "reply-emea",
            "provider": "replyio",
            "enrollment_id": "100:12345",
            "sequence": {"id": "100", "name": "Q4 outbound"},
            "contact": {
                "id": "12345",
                "email": "john.doe@company.com",
                "name": "John Doe",
                "company": "Tech Solutions Inc",
            },
            "previous": {**state, "step": 1, **flags},
            "current": {**state, "step": 2, **flags},
            "detected_at": "2026-11-22T13:00:05.120Z",
        },
    }
    event = make_event()
    assert event.document() == expected
    assert orjson.loads(event.to_json()) == expected


def test_document_has_exactly_the_spec_fields() -> None:
    doc = orjson.loads(make_event().to_json())
    assert set(doc) == {"type", "timestamp", "data"}
    data = doc["data"]
    assert set(data) == {
        "id",
        "source",
        "provider",
        "enrollment_id",
        "sequence",
        "contact",
        "previous",
        "current",
        "detected_at",
    }
    assert set(data["sequence"]) == {"id", "name"}
    assert set(data["contact"]) == {"id", "email", "name", "company"}
    assert set(data["previous"]) == STATE_KEYS
    assert set(data["current"]) == STATE_KEYS
    assert data["detected_at"] == doc["timestamp"]


def test_enrolled_has_null_previous() -> None:
    doc = orjson.loads(make_event(EventType.ENROLLED, previous=None).to_json())
    assert doc["type"] == "enrollment.enrolled"
    assert doc["data"]["previous"] is None
    assert set(doc["data"]["current"]) == STATE_KEYS


def test_absence_removal_has_null_current() -> None:
    doc = orjson.loads(make_event(EventType.REMOVED, current=None).to_json())
    assert doc["type"] == "enrollment.removed"
    assert doc["data"]["current"] is None
    assert doc["data"]["previous"]["step"] == 1


def test_unknown_contact_fields_are_null() -> None:
    doc = orjson.loads(make_event(contact=Contact(id="12345")).to_json())
    assert doc["data"]["contact"] == {"id": "12345", "email": None, "name": None, "company": None}


def test_unknown_sequence_name_is_null() -> None:
    event = replace(make_event(), sequence=SequenceRef(id="100"))
    assert event.document()["data"]["sequence"] == {"id": "100", "name": None}


def test_steps_total_is_in_the_sequence_only_where_known_and_matches_the_schema() -> None:
    known = replace(make_event(), sequence=SequenceRef(id="100", name="Q4", steps_total=5))
    doc = orjson.loads(known.to_json())
    assert doc["data"]["sequence"] == {"id": "100", "name": "Q4", "steps_total": 5}
    assert problems_of(doc) == []
    assert "steps_total" not in make_event().document()["data"]["sequence"]
    assert problems_of(make_event().document()) == []
    # The schema holds consumers to an integer count of at least one.
    for odd in ("5", 0, None, 2.5):
        bad = orjson.loads(known.to_json())
        bad["data"]["sequence"]["steps_total"] = odd
        assert problems_of(bad), odd


def test_event_types_are_the_spec_names_plus_opt_in_health_notices() -> None:
    assert {t.value for t in EventType} == {
        "enrollment.enrolled",
        "enrollment.step_advanced",
        "enrollment.replied",
        "enrollment.bounced",
        "enrollment.opted_out",
        "enrollment.paused",
        "enrollment.resumed",
        "enrollment.finished",
        "enrollment.removed",
        "enrollment.status_changed",
    }
    assert set(ALL_EVENT_TYPES) == {t.value for t in EventType} | {
        "source.failing",
        "source.recovered",
        "source.state_lost",
        "source.removals_held",
    }


@pytest.mark.parametrize(
    ("event_type", "patterns", "expected"),
    [
        ("source.failing", ("*",), False),
        ("source.failing", ("enrollment.*",), False),
        ("source.failing", ("source.*",), True),
        ("source.recovered", ("*", "source.recovered"), True),
        ("enrollment.replied", ("source.*",), False),
        ("enrollment.replied", ("*",), True),
        ("enrollment.replied", ("enrollment.*",), True),
        ("enrollment.replied", ("enrollment.replied",), True),
        ("enrollment.replied", ("enrollment.finished", "enrollment.replied"), True),
        ("enrollment.replied", ("enrollment.finished",), False),
        ("enrollment.replied", ("enrollment.repl",), False),
        ("enrollment.replied", ("replied",), False),
        ("enrollment.replied", ("other.*",), False),
        ("enrollment.replied", ("Enrollment.Replied",), False),
        ("enrollment.replied", (), False),
        ("enrollment.step_advanced", ("enrollment.step_*",), True),
        ("enrollment.status_changed", ("enrollment.step_*",), False),
    ],
)
def test_matches_any(event_type: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert matches_any(event_type, patterns) is expected


@pytest.mark.parametrize("event_type", [t.value for t in EventType])
def test_catch_all_globs_match_every_enrollment_type(event_type: str) -> None:
    assert matches_any(event_type, ("*",))
    assert matches_any(event_type, ("enrollment.*",))
    assert matches_any(event_type, (event_type,))
