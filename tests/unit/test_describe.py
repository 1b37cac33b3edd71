"""describe(): one readable line per event document; and the console lines built on it."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from notifiers.base import OutboundEvent
from notifiers.console import ConsoleNotifier
from notifiers.describe import describe
from notifiers.registry import NotifierParams, build_notifier
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import ConfigError, DeliveryPermanent, DeliveryRetriable
from worker.events import Event, EventType

ACTIVE1 = State(status=Status.ACTIVE, raw_status="Active", step=1)


def _event(
    event_type: EventType,
    *,
    previous: State | None = ACTIVE1,
    current: State | None = ACTIVE1,
    contact: Contact | None = None,
    sequence: SequenceRef | None = None,
) -> Event:
    return Event(
        id="evt_1",
        type=event_type,
        source="reply-emea",
        provider="replyio",
        enrollment_id="100:12345",
        sequence=sequence or SequenceRef(id="100", name="Q4 outbound"),
        contact=contact or Contact(id="12345", email="john@example.com", name="John Doe"),
        previous=previous,
        current=current,
        detected_at=datetime(2026, 11, 22, 13, 0, 5, 120000, tzinfo=UTC),
    )


def _state(status: Status, step: int | None = 1) -> State:
    return State(status=status, raw_status=status.value.upper(), step=step)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            _event(EventType.ENROLLED, previous=None),
            "John Doe enrolled in Q4 outbound [reply-emea]",
        ),
        (
            _event(EventType.STEP_ADVANCED, current=_state(Status.ACTIVE, 3)),
            "John Doe advanced to step 3 (from 1) in Q4 outbound [reply-emea]",
        ),
        (
            _event(
                EventType.STEP_ADVANCED,
                previous=_state(Status.ACTIVE, None),
                current=_state(Status.ACTIVE, 2),
            ),
            "John Doe advanced to step 2 in Q4 outbound [reply-emea]",
        ),
        (
            _event(
                EventType.STEP_ADVANCED,
                current=_state(Status.ACTIVE, 3),
                sequence=SequenceRef(id="100", name="Q4 outbound", steps_total=5),
            ),
            "John Doe advanced to step 3 of 5 (from 1) in Q4 outbound [reply-emea]",
        ),
        (
            _event(
                EventType.STEP_ADVANCED,
                current=_state(Status.ACTIVE, 7),
                sequence=SequenceRef(id="100", name="Q4 outbound", steps_total=5),
            ),
            "John Doe advanced to step 7 (from 1) in Q4 outbound [reply-emea]",  # stale total
        ),
        (_event(EventType.REPLIED), "John Doe replied in Q4 outbound [reply-emea]"),
        (_event(EventType.BOUNCED), "John Doe bounced in Q4 outbound [reply-emea]"),
        (_event(EventType.OPTED_OUT), "John Doe opted out in Q4 outbound [reply-emea]"),
        (
            _event(EventType.PAUSED, current=_state(Status.PAUSED)),
            "John Doe was paused in Q4 outbound [reply-emea]",
        ),
        (
            _event(EventType.PAUSED, current=_state(Status.BLOCKED)),
            "John Doe was blocked in Q4 outbound [reply-emea]",
        ),
        (_event(EventType.RESUMED), "John Doe resumed in Q4 outbound [reply-emea]"),
        (
            _event(EventType.FINISHED, current=_state(Status.FINISHED)),
            "John Doe finished in Q4 outbound [reply-emea]",
        ),
        (
            _event(EventType.REMOVED, current=_state(Status.REMOVED)),
            "John Doe was removed in Q4 outbound [reply-emea]",
        ),
        (
            _event(EventType.REMOVED, current=None),
            "John Doe was removed (no longer listed) in Q4 outbound [reply-emea]",
        ),
        (
            _event(
                EventType.STATUS_CHANGED,
                previous=_state(Status.ACTIVE),
                current=_state(Status.BLOCKED),
            ),
            "John Doe status changed active -> blocked in Q4 outbound [reply-emea]",
        ),
    ],
)
def test_describe_each_event_type(event: Event, expected: str) -> None:
    assert describe(event.document()) == expected


@pytest.mark.parametrize(
    ("contact", "who"),
    [
        (Contact(id="7", email="ann@example.com", name="Ann"), "Ann"),
        (Contact(id="7", email="ann@example.com"), "ann@example.com"),
        (Contact(id="7"), "contact 7"),
        (Contact(), "unknown contact"),
    ],
)
def test_who_falls_back_from_name_to_email_to_id(contact: Contact, who: str) -> None:
    line = describe(_event(EventType.REPLIED, contact=contact).document())
    assert line.startswith(f"{who} replied in ")


def test_sequence_falls_back_to_its_id() -> None:
    line = describe(_event(EventType.REPLIED, sequence=SequenceRef(id="100")).document())
    assert line == "John Doe replied in sequence 100 [reply-emea]"


def test_line_stays_one_line_and_bounded_for_hostile_names() -> None:
    contact = Contact(id="1", name="Eve\nInjected: line\r\t" + "x" * 10_000)
    line = describe(_event(EventType.REPLIED, contact=contact).document())
    assert "\n" not in line
    assert "\r" not in line
    assert "\t" not in line
    assert line.startswith("Eve Injected: line xxx")
    assert len(line) < 300
    assert "…" in line


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"type": 3, "data": "nope"},
        {"type": "enrollment.step_advanced", "data": {"current": {"step": "3"}}},
        {"type": "enrollment.future_thing", "data": {"contact": None, "sequence": []}},
    ],
)
def test_malformed_documents_still_describe(document: dict[str, Any]) -> None:
    line = describe(document)
    assert "unknown contact" in line
    assert "unknown sequence" in line


# --- console lines -------------------------------------------------------------------------


def _outbound(event: Event) -> OutboundEvent:
    return OutboundEvent(id=event.id, body=event.to_json())


async def test_console_writes_timestamp_type_and_description() -> None:
    stream = io.StringIO()
    console = ConsoleNotifier(name="local", stream=stream)
    assert console.max_batch == 100
    await console.send(
        [_outbound(_event(EventType.REPLIED)), _outbound(_event(EventType.ENROLLED))]
    )
    lines = stream.getvalue().splitlines()
    assert lines == [
        "2026-11-22T13:00:05.120Z enrollment.replied         "
        "John Doe replied in Q4 outbound [reply-emea]",
        "2026-11-22T13:00:05.120Z enrollment.enrolled        "
        "John Doe enrolled in Q4 outbound [reply-emea]",
    ]


async def test_console_json_lines_are_the_documents() -> None:
    stream = io.StringIO()
    console = ConsoleNotifier(name="local", stream=stream, json_lines=True)
    event = _event(EventType.FINISHED, current=_state(Status.FINISHED))
    await console.send([_outbound(event)])
    (line,) = stream.getvalue().splitlines()
    assert orjson.loads(line) == event.document()


async def test_console_classifies_bad_documents_and_closed_streams() -> None:
    stream = io.StringIO()
    console = ConsoleNotifier(name="local", stream=stream)
    with pytest.raises(DeliveryPermanent, match=r"'local'.*evt_x"):
        await console.send([OutboundEvent(id="evt_x", body=b"not json")])
    stream.close()
    with pytest.raises(DeliveryRetriable, match="console write failed"):
        await console.send([_outbound(_event(EventType.REPLIED))])
    await console.aclose()


# --- registry ------------------------------------------------------------------------------


async def test_registry_builds_each_type_and_hides_secrets() -> None:
    secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
    url = "https://hooks.slack.com/services/T000/B000/SECRETPATH"
    webhook = NotifierParams(
        name="crm", type="webhook", url="https://example.com/h", secrets=(secret,)
    )
    slack = NotifierParams(name="chat", type="slack", url=url)
    console = NotifierParams(name="local", type="console", stream=io.StringIO())
    assert secret not in repr(webhook)
    assert url not in repr(slack)
    built = [build_notifier(p) for p in (webhook, slack, console)]
    assert [n.max_batch for n in built] == [1, 100, 100]
    assert all(secret not in repr(n) and url not in repr(n) for n in built)
    for notifier in built:
        await notifier.aclose()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (NotifierParams(name="x", type="pager"), "type must be one of console, slack, webhook"),
        (NotifierParams(name="x", type="slack"), "'x': url is required"),
        (
            NotifierParams(name="x", type="webhook", url="https://example.com/h"),
            "'x': secret is required",
        ),
        (
            NotifierParams(name="x", type="slack", url="ftp://hooks.example.com/SECRETPATH"),
            "'x': url must be an absolute http",
        ),
        (
            NotifierParams(
                name="x", type="webhook", url="https://e.com/", secrets=("whsec_SECRET*!",)
            ),
            "'x': secret: webhook secret is not valid base64",
        ),
    ],
)
def test_registry_rejects_bad_params_without_quoting_secrets(
    params: NotifierParams, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build_notifier(params)
    assert "SECRET" not in str(info.value)
