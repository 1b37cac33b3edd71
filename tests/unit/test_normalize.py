"""Reply.io and Unify normalization (SPEC §5; records from providers/README.md §3.9, §4.9)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.errors import MalformedResponse
from worker.normalize import NORMALIZERS, fields, replyio, unify
from worker.normalize.fields import RecordError, UnreadableId
from worker.sources.base import RawPage

_DROP: Any = object()  # marks a field to delete from the example record

# ---------------------------------------------------------------- Reply.io (README §3.9)

REPLY_JOHN: dict[str, Any] = {
    "contactId": 12345,
    "sequenceId": 100,
    "email": "john.doe@company.com",
    "firstName": "John",
    "lastName": "Doe",
    "company": "Tech Solutions Inc",
    "title": "Senior Product Manager",
    "status": "Active",
    "subStatus": "None",
    "currentStep": 2,
    "addingDate": "2024-03-08T10:00:00+00:00",
    "movingDate": None,
    "nextSendAfter": "2024-03-09T09:00:00+00:00",
    "isOptedOut": False,
    "emailAccountId": 101,
    "linkedInAccountId": None,
    "icpScore": 0.85,
}
REPLY_ANA: dict[str, Any] = {
    "contactId": 12346,
    "sequenceId": 100,
    "email": "ana@acme.io",
    "firstName": "Ana",
    "lastName": "Reyes",
    "company": "Acme",
    "title": None,
    "status": "OutOfOffice",
    "subStatus": "AutoReplied",
    "currentStep": 1,
    "addingDate": "2024-03-07T08:00:00+00:00",
    "movingDate": None,
    "nextSendAfter": "2024-03-14T09:00:00+00:00",
    "isOptedOut": False,
    "emailAccountId": 101,
    "linkedInAccountId": None,
    "icpScore": None,
}
REPLY_PAGE = RawPage(
    records=[REPLY_JOHN, REPLY_ANA],
    where="sequence 100, skip=0",
    sequence=SequenceRef(id="100", name="Q4 outbound"),
)


def reply(record: dict[str, Any], *, page: RawPage = REPLY_PAGE) -> Enrollment:
    return replyio.normalize(record, page=page)


def reply_with(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(REPLY_JOHN)
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return record


def test_replyio_example_records() -> None:
    assert reply(REPLY_JOHN) == Enrollment(
        enrollment_id="100:12345",
        sequence=SequenceRef(id="100", name="Q4 outbound"),
        contact=Contact(
            id="12345",
            email="john.doe@company.com",
            name="John Doe",
            company="Tech Solutions Inc",
        ),
        state=State(
            status=Status.ACTIVE,
            raw_status="Active",
            step=2,
            step_id=None,
            replied=None,
            bounced=None,
            opted_out=False,
        ),
        updated_at=None,
    )
    ana = reply(REPLY_ANA)
    assert ana.enrollment_id == "100:12346"
    # An auto-reply stays visible as the state's reason (SPEC §5).
    assert ana.state == State(
        status=Status.PAUSED,
        raw_status="OutOfOffice",
        step=1,
        opted_out=False,
        reason="AutoReplied",
    )
    assert ana.contact == Contact(id="12346", email="ana@acme.io", name="Ana Reyes", company="Acme")


def test_replyio_is_registered() -> None:
    assert NORMALIZERS["replyio"](REPLY_JOHN, page=REPLY_PAGE) == reply(REPLY_JOHN)
    assert NORMALIZERS["unify"](UNIFY_FINISHED, page=UNIFY_PAGE) == unify_n(UNIFY_FINISHED)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # v4 PascalCase (SPEC §5 table)
        ("Active", Status.ACTIVE),
        ("Paused", Status.PAUSED),
        ("OutOfOffice", Status.PAUSED),
        ("Inactive", Status.BLOCKED),
        ("Finished", Status.FINISHED),
        # v3 lowercase enums, and any other casing
        ("active", Status.ACTIVE),
        ("paused", Status.PAUSED),
        ("outofoffice", Status.PAUSED),
        ("outOfOffice", Status.PAUSED),
        ("inactive", Status.BLOCKED),
        ("finished", Status.FINISHED),
        ("FINISHED", Status.FINISHED),
        ("ACTIVE", Status.ACTIVE),
    ],
)
def test_replyio_status_table(raw: str, status: Status) -> None:
    state = reply(reply_with(status=raw)).state
    assert state.status is status
    assert state.raw_status == raw  # the provider's own spelling is kept


@pytest.mark.parametrize("raw", ["Replied", "MeetingBooked", "Bounced", "", "New"])
def test_replyio_unknown_status_keeps_raw_and_maps_to_active(raw: str) -> None:
    """Documented in worker/normalize/replyio.py: an unknown value is still in the sequence."""
    state = reply(reply_with(status=raw)).state
    assert state.status is replyio.UNKNOWN_STATUS is Status.ACTIVE
    assert state.raw_status == raw


@pytest.mark.parametrize(
    ("opted", "expected"), [(True, True), (False, False), (None, None), (_DROP, None)]
)
def test_replyio_opted_out(opted: Any, expected: bool | None) -> None:
    state = reply(reply_with(isOptedOut=opted)).state
    assert state.opted_out is expected
    assert state.replied is None
    assert state.bounced is None  # v4 has no replied/bounced signal


@pytest.mark.parametrize(("step", "expected"), [(1, 1), (7, 7), (None, None), (_DROP, None)])
def test_replyio_step(step: Any, expected: int | None) -> None:
    state = reply(reply_with(currentStep=step)).state
    assert state.step == expected
    assert state.step_id is None


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("John", "Doe", "John Doe"),
        ("John", None, "John"),
        (None, "Doe", "Doe"),
        (None, None, None),
        ("", "", None),
        (_DROP, _DROP, None),
    ],
)
def test_replyio_contact_name(first: Any, last: Any, name: str | None) -> None:
    assert reply(reply_with(firstName=first, lastName=last)).contact.name == name


def test_replyio_unknown_contact_fields_are_none_never_invented() -> None:
    record = {"contactId": 5, "sequenceId": 100, "status": "Active", "currentStep": 1}
    assert reply(record).contact == Contact(id="5", email=None, name=None, company=None)


def test_replyio_string_ids_are_kept() -> None:
    got = reply(reply_with(contactId="c-9", sequenceId="100"))
    assert got.enrollment_id == "100:c-9"
    assert got.contact.id == "c-9"


def test_replyio_sequence_id_falls_back_to_the_page() -> None:
    got = reply(reply_with(sequenceId=_DROP))
    assert got.enrollment_id == "100:12345"
    assert got.sequence == SequenceRef(id="100", name="Q4 outbound")


def test_replyio_sequence_name_only_from_the_matching_page() -> None:
    got = reply(reply_with(sequenceId=200))
    assert got.enrollment_id == "200:12345"
    assert got.sequence == SequenceRef(id="200", name=None)


def test_replyio_without_sequence_anywhere_is_an_error() -> None:
    page = RawPage(records=[], where="x")
    with pytest.raises(RecordError, match="sequenceId"):
        reply(reply_with(sequenceId=_DROP), page=page)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contactId", _DROP),
        ("contactId", None),
        ("contactId", ""),
        ("contactId", True),
        ("contactId", 1.5),
        ("contactId", {"id": 1}),
        ("sequenceId", None),
        ("sequenceId", False),
        ("sequenceId", [100]),
        ("status", _DROP),
        ("status", None),
        ("status", 1),
        ("currentStep", "2"),
        ("currentStep", 2.0),
        ("currentStep", True),
        ("currentStep", {"stepId": 1}),  # v3 object shape
        ("isOptedOut", "false"),
        ("isOptedOut", 0),
        ("email", 42),
        ("firstName", ["John"]),
        ("lastName", 7),
        ("company", {"name": "Acme"}),
    ],
)
def test_replyio_bad_fields_raise_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(RecordError, match=re.escape(repr(field))) as info:
        reply(reply_with(**{field: value}))
    assert isinstance(info.value, MalformedResponse)
    # The message names the field, never the payload.
    assert "john.doe@company.com" not in str(info.value)


# ---------------------------------------------------------------- Unify (README §4.9)

UNIFY_FINISHED: dict[str, Any] = {
    "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "created_at": "2023-11-07T05:31:56Z",
    "updated_at": "2023-11-07T05:31:56Z",
    "sequence": {
        "id": "9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a",
        "name": "Q4 outbound",
        "is_paused": False,
    },
    "person": {
        "id": "5e2a7c1b-8d3f-4a6e-9b0c-2d1e4f5a6b7c",
        "email": "jsmith@example.com",
        "first_name": "Jane",
        "last_name": "Smith",
        "linkedin_url": None,
    },
    "mailbox": {
        "id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
        "email": "rep@seller.com",
        "display_name": "Rep Name",
        "is_paused": False,
        "is_unauthorized": False,
    },
    "enrolled_by_play": {"id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "name": "Website visitors"},
    "reply_email_message": {
        "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "subject": "Re: quick question",
        "classifications": [{"id": "aa11bb22-cc33-4d44-8e55-ff6677889900", "category": "POSITIVE"}],
        "received_at": "2023-11-07T05:31:56Z",
    },
    "status": "FINISHED",
    "is_blocked": False,
    "is_bounced": False,
    "is_canceled": False,
    "is_excluded": False,
    "is_opted_out": False,
    "is_paused": False,
    "is_replied": True,
    "started_at": "2023-11-06T15:00:00Z",
    "ended_at": "2023-11-07T05:31:56Z",
}
UNIFY_PAUSED: dict[str, Any] = {
    "id": "4d01d4dd-1e55-4c61-9999-9ee36847163b",
    "created_at": "2023-11-07T06:00:00Z",
    "updated_at": "2023-11-07T06:10:00Z",
    "sequence": {
        "id": "9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a",
        "name": "Q4 outbound",
        "is_paused": False,
    },
    "person": {
        "id": "6f3b8d2c-9e4a-4b7f-8c1d-3e2f5a6b7c8d",
        "email": "li@example.org",
        "first_name": None,
        "last_name": None,
        "linkedin_url": None,
    },
    "mailbox": {
        "id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
        "email": "rep@seller.com",
        "display_name": None,
        "is_paused": False,
        "is_unauthorized": False,
    },
    "enrolled_by_play": None,
    "reply_email_message": None,
    "status": "IN_PROGRESS",
    "is_blocked": False,
    "is_bounced": False,
    "is_canceled": False,
    "is_excluded": False,
    "is_opted_out": False,
    "is_paused": True,
    "is_replied": False,
    "started_at": "2023-11-07T06:05:00Z",
    "ended_at": None,
}
# The older docs example (vendor-docs/unify-list-enrollments.txt): no status, no play.
UNIFY_OLD_DOCS: dict[str, Any] = {
    "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "created_at": "2023-11-07T05:31:56Z",
    "updated_at": "2023-11-07T05:31:56Z",
    "sequence": {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "name": "<string>",
        "is_paused": True,
    },
    "person": {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "email": "jsmith@example.com",
        "first_name": "<string>",
        "last_name": "<string>",
        "linkedin_url": "<string>",
    },
    "mailbox": {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "email": "jsmith@example.com",
        "display_name": "<string>",
        "is_paused": True,
        "is_unauthorized": True,
    },
    "reply_email_message": {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "subject": "<string>",
        "classifications": [{"id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}],
        "received_at": "2023-11-07T05:31:56Z",
    },
    "is_blocked": True,
    "is_bounced": True,
    "is_canceled": True,
    "is_excluded": True,
    "is_opted_out": True,
    "is_paused": True,
    "is_replied": True,
    "started_at": "2023-11-07T05:31:56Z",
    "ended_at": "2023-11-07T05:31:56Z",
}
UNIFY_PAGE = RawPage(records=[UNIFY_FINISHED, UNIFY_PAUSED], where="cursor=None")
NO_FLAGS = {
    "is_blocked": False,
    "is_canceled": False,
    "is_excluded": False,
    "is_paused": False,
}


def unify_n(record: dict[str, Any]) -> Enrollment:
    return unify.normalize(record, page=UNIFY_PAGE)


def unify_with(base: dict[str, Any] | None = None, /, **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(UNIFY_PAUSED if base is None else base)
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return record


def test_unify_example_records() -> None:
    assert unify_n(UNIFY_FINISHED) == Enrollment(
        enrollment_id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
        sequence=SequenceRef(id="9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a", name="Q4 outbound"),
        contact=Contact(
            id="5e2a7c1b-8d3f-4a6e-9b0c-2d1e4f5a6b7c",
            email="jsmith@example.com",
            name="Jane Smith",
            company=None,
        ),
        state=State(
            status=Status.FINISHED,
            raw_status="FINISHED",
            step=None,
            step_id=None,
            replied=True,
            bounced=False,
            opted_out=False,
        ),
        updated_at="2023-11-07T05:31:56Z",
    )
    paused = unify_n(UNIFY_PAUSED)
    assert paused.enrollment_id == "4d01d4dd-1e55-4c61-9999-9ee36847163b"
    assert paused.state == State(
        status=Status.PAUSED,
        raw_status="IN_PROGRESS",
        replied=False,
        bounced=False,
        opted_out=False,
    )
    assert paused.contact == Contact(
        id="6f3b8d2c-9e4a-4b7f-8c1d-3e2f5a6b7c8d", email="li@example.org", name=None, company=None
    )
    assert paused.updated_at == "2023-11-07T06:10:00Z"


def test_unify_old_docs_record_without_status() -> None:
    """Every flag set, no `status`: canceled/excluded win; ended_at implies FINISHED."""
    got = unify_n(UNIFY_OLD_DOCS)
    assert got.state.status is Status.REMOVED
    assert got.state.raw_status == "FINISHED"
    assert (got.state.replied, got.state.bounced, got.state.opted_out) == (True, True, True)
    assert got.contact.name == "<string> <string>"  # taken as given, not cleaned up


@pytest.mark.parametrize(
    ("raw", "flags", "status"),
    [
        ("DRAFT", {}, Status.PENDING),
        ("IN_PROGRESS", {}, Status.ACTIVE),
        ("FINISHED", {}, Status.FINISHED),
        ("IN_PROGRESS", {"is_paused": True}, Status.PAUSED),
        ("IN_PROGRESS", {"is_blocked": True}, Status.BLOCKED),
        ("IN_PROGRESS", {"is_paused": True, "is_blocked": True}, Status.BLOCKED),
        # paused/blocked only qualify a running enrollment
        ("DRAFT", {"is_paused": True}, Status.PENDING),
        ("DRAFT", {"is_blocked": True}, Status.PENDING),
        ("FINISHED", {"is_paused": True}, Status.FINISHED),
        ("FINISHED", {"is_blocked": True}, Status.FINISHED),
        # canceled / excluded win over everything
        ("IN_PROGRESS", {"is_canceled": True}, Status.REMOVED),
        ("IN_PROGRESS", {"is_excluded": True}, Status.REMOVED),
        ("FINISHED", {"is_canceled": True}, Status.REMOVED),
        ("FINISHED", {"is_excluded": True}, Status.REMOVED),
        ("DRAFT", {"is_canceled": True}, Status.REMOVED),
        ("DRAFT", {"is_excluded": True}, Status.REMOVED),
        ("IN_PROGRESS", {"is_canceled": True, "is_paused": True}, Status.REMOVED),
        ("IN_PROGRESS", {"is_excluded": True, "is_blocked": True}, Status.REMOVED),
        # replied/bounced/opted_out do not change the status by themselves
        ("IN_PROGRESS", {"is_replied": True, "is_bounced": True}, Status.ACTIVE),
    ],
)
def test_unify_status_precedence(raw: str, flags: dict[str, bool], status: Status) -> None:
    state = unify_n(unify_with(**{**NO_FLAGS, "status": raw, **flags})).state
    assert state.status is status
    assert state.raw_status == raw


@pytest.mark.parametrize(
    ("raw", "flags", "status"),
    [
        ("ARCHIVED", {}, Status.ACTIVE),
        ("in_progress", {}, Status.ACTIVE),
        ("ARCHIVED", {"is_paused": True}, Status.PAUSED),
        ("ARCHIVED", {"is_canceled": True}, Status.REMOVED),
    ],
)
def test_unify_unknown_status_keeps_raw_and_counts_as_running(
    raw: str, flags: dict[str, bool], status: Status
) -> None:
    """Documented in worker/normalize/unify.py: an unknown status is still running."""
    assert unify.UNKNOWN_STATUS is Status.ACTIVE
    state = unify_n(unify_with(**{**NO_FLAGS, "status": raw, **flags})).state
    assert state.status is status
    assert state.raw_status == raw


@pytest.mark.parametrize(
    ("ended_at", "flags", "raw", "status"),
    [
        ("2023-11-07T05:31:56Z", {}, "FINISHED", Status.FINISHED),
        (None, {}, "IN_PROGRESS", Status.ACTIVE),
        (_DROP, {}, "IN_PROGRESS", Status.ACTIVE),
        (None, {"is_paused": True}, "IN_PROGRESS", Status.PAUSED),
        (None, {"is_blocked": True}, "IN_PROGRESS", Status.BLOCKED),
        (None, {"is_canceled": True}, "IN_PROGRESS", Status.REMOVED),
        ("2023-11-07T05:31:56Z", {"is_excluded": True}, "FINISHED", Status.REMOVED),
    ],
)
def test_unify_missing_status_is_derived_from_ended_at(
    ended_at: Any, flags: dict[str, bool], raw: str, status: Status
) -> None:
    record = unify_with(**{**NO_FLAGS, "status": _DROP, "ended_at": ended_at, **flags})
    state = unify_n(record).state
    assert (state.raw_status, state.status) == (raw, status)


@pytest.mark.parametrize(
    ("field", "attr"),
    [("is_replied", "replied"), ("is_bounced", "bounced"), ("is_opted_out", "opted_out")],
)
@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (_DROP, None)])
def test_unify_flags(field: str, attr: str, value: Any, expected: bool | None) -> None:
    state = unify_n(unify_with(**{field: value})).state
    assert getattr(state, attr) is expected
    assert state.step is None
    assert state.step_id is None


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("Jane", "Smith", "Jane Smith"),
        ("Jane", None, "Jane"),
        (None, "Smith", "Smith"),
        (None, None, None),
        (_DROP, _DROP, None),
    ],
)
def test_unify_contact_name(first: Any, last: Any, name: str | None) -> None:
    person = {"id": "p-1", "email": "x@example.com", "first_name": first, "last_name": last}
    person = {k: v for k, v in person.items() if v is not _DROP}
    contact = unify_n(unify_with(person=person)).contact
    assert contact == Contact(id="p-1", email="x@example.com", name=name, company=None)


def test_unify_minimal_person_invents_nothing() -> None:
    got = unify_n(unify_with(person={"id": "p-1"}, sequence={"id": "s-1"}))
    assert got.contact == Contact(id="p-1", email=None, name=None, company=None)
    assert got.sequence == SequenceRef(id="s-1", name=None)


def test_unify_ignores_the_page_context() -> None:
    page = RawPage(records=[], where="x", sequence=SequenceRef(id="other", name="Other"))
    got = unify.normalize(UNIFY_PAUSED, page=page)
    assert got.sequence == SequenceRef(
        id="9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a", name="Q4 outbound"
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": _DROP}, "id"),
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": True}, "id"),
        ({"id": ["x"]}, "id"),
        ({"sequence": _DROP}, "sequence"),
        ({"sequence": None}, "sequence"),
        ({"sequence": "9b1f6a0e"}, "sequence"),
        ({"sequence": {"name": "Q4"}}, "sequence.id"),
        ({"sequence": {"id": "s", "name": 5}}, "sequence.name"),
        ({"person": _DROP}, "person"),
        ({"person": ["p"]}, "person"),
        ({"person": {"email": "x@example.com"}}, "person.id"),
        ({"person": {"id": "p", "email": 5}}, "person.email"),
        ({"person": {"id": "p", "first_name": 5}}, "person.first_name"),
        ({"person": {"id": "p", "last_name": False}}, "person.last_name"),
        ({"updated_at": _DROP}, "updated_at"),
        ({"updated_at": None}, "updated_at"),
        ({"updated_at": 1699334400}, "updated_at"),
        ({"status": 3}, "status"),
        ({"status": _DROP, "ended_at": 5}, "ended_at"),
        ({"is_canceled": "false"}, "is_canceled"),
        ({"is_excluded": 0}, "is_excluded"),
        ({"is_paused": "yes", "is_canceled": False}, "is_paused"),
        ({"is_blocked": 1, "is_paused": False}, "is_blocked"),
        ({"is_replied": "true"}, "is_replied"),
        ({"is_bounced": 1}, "is_bounced"),
        ({"is_opted_out": "no"}, "is_opted_out"),
    ],
)
def test_unify_bad_fields_raise_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError, match=re.escape(repr(field))) as info:
        unify_n(unify_with(**changes))
    assert isinstance(info.value, MalformedResponse)
    assert "li@example.org" not in str(info.value)


@pytest.mark.parametrize("provider", sorted(NORMALIZERS))
@pytest.mark.parametrize("record", [None, "100:1", 7, ["id"]])
def test_a_record_that_is_not_an_object_has_an_unreadable_id(provider: str, record: Any) -> None:
    page = RawPage(records=[record], where="page 1", sequence=SequenceRef(id="100"))
    with pytest.raises(UnreadableId, match="not an object"):
        NORMALIZERS[provider](record, page=page)


# Records whose id reads fine but which lack everything else.
READABLE_IDS: dict[str, dict[str, Any]] = {
    "replyio": {"contactId": 7, "sequenceId": 100},
    "unify": {"id": "e-7"},
    "whippy": {"sequence_id": "100", "contact": {"id": "7"}},
    "zendesk_sell": {"id": 7},
}


@pytest.mark.parametrize("provider", sorted(NORMALIZERS))
def test_a_record_error_names_its_enrollment_when_the_id_is_readable(provider: str) -> None:
    readable = READABLE_IDS[provider]
    page = RawPage(records=[readable], where="page 1", sequence=SequenceRef(id="100"))
    with pytest.raises(RecordError) as info:
        NORMALIZERS[provider](readable, page=page)
    assert not isinstance(info.value, UnreadableId)
    assert info.value.enrollment_id in ("100:7", "e-7", "7")
    assert info.value.field


def test_an_unforeseen_error_in_a_normalizer_is_a_record_error_naming_the_enrollment() -> None:
    record = copy.deepcopy(READABLE_IDS["replyio"]) | {"status": "Active", "email": "x@y.z"}
    record["currentStep"] = {"not": "a number"}  # optional_int catches this one ...
    page = RawPage(records=[record], where="page 1", sequence=SequenceRef(id="100"))
    with pytest.raises(RecordError):
        NORMALIZERS["replyio"](record, page=page)

    def broken(record: Any, *, page: RawPage) -> Enrollment:
        raise ValueError(f"cannot parse {record['secret']}")  # ... this one nobody foresaw

    wrapped = fields.naming_records(replyio.enrollment_id)(broken)
    with pytest.raises(RecordError) as info:
        wrapped(record | {"secret": "s3cr3t-value"}, page=page)
    assert info.value.enrollment_id == "100:7"
    assert "ValueError" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)
