"""Reply.io normalization (SPEC §5): v3 and v4 listing records, auto-replies, empty strings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from worker.enrollment import Contact, SequenceRef, State, Status
from worker.normalize import replyio
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage

V3_PAGE = RawPage(
    records=[], where="x", sequence=SequenceRef(id="100", name="Q4"), extra={"api_version": "v3"}
)
V4_PAGE = RawPage(
    records=[], where="x", sequence=SequenceRef(id="100", name="Q4"), extra={"api_version": "v4"}
)
V3: dict[str, Any] = {
    "contactId": 12345,
    "sequenceId": 100,
    "email": "john.doe@company.com",
    "firstName": "John",
    "lastName": "Doe",
    "company": "Tech Solutions Inc",
    "title": "Senior Product Manager",
    "statusInSequence": "active",
    "isOptedOut": False,
    "callStatus": "none",
    "meetingStatus": "none",
    "emailDisposition": {"isReplied": False, "isBounced": False},
    "currentStep": {"stepId": 5421, "displayName": "2"},
    "addingDate": "2024-03-08T10:00:00+00:00",
    "emailAccountId": 101,
    "linkedInAccountId": None,
}
V4: dict[str, Any] = {
    "contactId": 12345,
    "sequenceId": 100,
    "email": "john.doe@company.com",
    "firstName": "John",
    "lastName": "Doe",
    "company": "Tech Solutions Inc",
    "status": "Active",
    "subStatus": "None",
    "currentStep": 2,
    "isOptedOut": False,
}


def v3(**changes: Any) -> State:
    return replyio.normalize(V3 | changes, page=V3_PAGE).state


def test_v3_record_reads_disposition_and_step() -> None:
    enrollment = replyio.normalize(V3, page=V3_PAGE)
    assert enrollment.enrollment_id == "100:12345"
    assert enrollment.contact == Contact(
        id="12345", email="john.doe@company.com", name="John Doe", company="Tech Solutions Inc"
    )
    assert enrollment.state == State(
        status=Status.ACTIVE,
        raw_status="active",
        step=2,
        step_id="5421",
        replied=False,
        bounced=False,
        opted_out=False,
    )


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("active", Status.ACTIVE),
        ("paused", Status.PAUSED),
        ("outOfOffice", Status.PAUSED),
        ("out_of_office", Status.PAUSED),
        ("inactive", Status.BLOCKED),
        ("finished", Status.FINISHED),
        ("Finished", Status.FINISHED),
        ("snoozed", Status.ACTIVE),  # unknown: nearest, raw kept
    ],
)
def test_v3_status_table_is_the_v4_table_case_insensitive(raw: str, status: Status) -> None:
    got = v3(statusInSequence=raw)
    assert (got.status, got.raw_status) == (status, raw)


def test_v3_reply_and_bounce_come_from_the_disposition() -> None:
    replied = v3(
        statusInSequence="finished", emailDisposition={"isReplied": True, "isBounced": False}
    )
    assert (replied.status, replied.replied, replied.bounced) == (Status.FINISHED, True, False)
    bounced = v3(emailDisposition={"isReplied": False, "isBounced": True})
    assert bounced.bounced is True
    assert v3(emailDisposition=None).replied is None


def test_v3_auto_reply_never_sets_replied_and_stays_visible() -> None:
    auto = v3(statusInSequence="outOfOffice", emailDisposition={"isReplied": True})
    assert (auto.status, auto.replied, auto.reason) == (Status.PAUSED, False, "AutoReplied")
    flagged = v3(subStatus="AutoReplied", emailDisposition={"isReplied": True})
    assert (flagged.replied, flagged.reason) == (False, "AutoReplied")
    assert v3().reason is None


def test_v3_step_without_a_number_keeps_its_id() -> None:
    assert (v3(currentStep=None).step, v3(currentStep=None).step_id) == (None, None)
    odd = v3(currentStep={"stepId": 9, "displayName": "1a"})
    assert (odd.step, odd.step_id) == (None, "9")
    assert v3(currentStep={"stepId": 9, "displayName": 3}).step == 3


def test_v4_auto_reply_is_kept_as_the_reason_and_never_replies() -> None:
    got = replyio.normalize(
        V4 | {"status": "OutOfOffice", "subStatus": "AutoReplied"}, page=V4_PAGE
    ).state
    assert got == State(
        status=Status.PAUSED,
        raw_status="OutOfOffice",
        step=2,
        opted_out=False,
        reason="AutoReplied",
    )


def test_the_record_shape_decides_without_a_version_on_the_page() -> None:
    bare = RawPage(records=[], where="x")
    assert replyio.normalize(V3, page=bare).state.step_id == "5421"
    assert replyio.normalize(V4, page=bare).state.step == 2


def test_empty_strings_are_null() -> None:
    got = replyio.normalize(V4 | {"email": "", "firstName": "", "company": ""}, page=V4_PAGE)
    assert got.contact == Contact(id="12345", email=None, name="Doe", company=None)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (V3 | {"statusInSequence": None}, "statusInSequence"),
        (V3 | {"emailDisposition": "yes"}, "emailDisposition"),
        (V3 | {"emailDisposition": {"isReplied": "yes"}}, "emailDisposition.isReplied"),
        (V3 | {"currentStep": {"stepId": True}}, "currentStep.stepId"),
        (V3 | {"currentStep": {"displayName": False}}, "currentStep.displayName"),
    ],
)
def test_bad_v3_records_name_the_field(record: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError, match=re.escape(f"record field '{field}'")):
        replyio.normalize(record, page=V3_PAGE)
