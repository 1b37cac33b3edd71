"""Unify: sequence/mailbox pause and authorization, auto-replies, updated_at (SPEC §5)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.unit.test_normalize import UNIFY_PAUSED
from worker.enrollment import Status
from worker.normalize import unify
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage

PAGE = RawPage(records=[], where="enrollments page 1")
RUNNING = {"status": "IN_PROGRESS", "is_paused": False, "is_blocked": False}


def record(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(UNIFY_PAUSED)
    out.update(RUNNING)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, Status.ACTIVE),
        ({"is_paused": True}, Status.PAUSED),
        ({"sequence": {"is_paused": True}}, Status.PAUSED),
        ({"mailbox": {"is_paused": True}}, Status.PAUSED),
        ({"is_blocked": True}, Status.BLOCKED),
        ({"mailbox": {"is_unauthorized": True}}, Status.BLOCKED),
        ({"mailbox": {"is_unauthorized": True, "is_paused": True}}, Status.BLOCKED),
        ({"sequence": {"is_paused": True}, "is_blocked": True}, Status.BLOCKED),
        # Pause flags only refine a running enrollment.
        ({"status": "FINISHED", "sequence": {"is_paused": True}}, Status.FINISHED),
        ({"status": "DRAFT", "mailbox": {"is_unauthorized": True}}, Status.PENDING),
        ({"is_canceled": True, "mailbox": {"is_paused": True}}, Status.REMOVED),
        # Absent flags are not pauses.
        ({"mailbox": None}, Status.ACTIVE),
        ({"sequence": {"is_paused": None}}, Status.ACTIVE),
    ],
)
def test_status_reads_sequence_and_mailbox(changes: dict[str, Any], status: Status) -> None:
    state = unify.normalize(record(**changes), page=PAGE).state
    assert state.status is status
    assert state.raw_status == (changes.get("status") or "IN_PROGRESS")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mailbox": {"is_paused": "yes"}}, "mailbox.is_paused"),
        ({"mailbox": {"is_unauthorized": 1}}, "mailbox.is_unauthorized"),
        ({"sequence": {"id": "s", "is_paused": "no"}}, "sequence.is_paused"),
        ({"mailbox": "rep@seller.com"}, "mailbox"),
    ],
)
def test_bad_pause_flags_are_record_errors(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError, match=re.escape(repr(field))):
        unify.normalize(record(**changes), page=PAGE)


def reply(*categories: str | None) -> dict[str, Any]:
    classes = [
        {"id": f"c{i}"} | ({} if c is None else {"category": c}) for i, c in enumerate(categories)
    ]
    return {"id": "m1", "subject": "Re: hi", "classifications": classes, "received_at": None}


@pytest.mark.parametrize(
    ("message", "replied", "reason"),
    [
        (reply("AUTOMATED"), False, "auto_reply"),
        (reply("automated"), False, "auto_reply"),
        (reply("AUTOMATED", "AUTOMATED"), False, "auto_reply"),
        (reply("POSITIVE"), True, None),
        (reply("NEGATIVE"), True, None),
        (reply("AUTOMATED", "NEUTRAL"), True, None),  # a human category wins
        (reply(None), True, None),  # the docs example: classifications with `id` only
        (reply(), True, None),
        (None, True, None),
    ],
)
def test_auto_replies_are_not_replies(
    message: dict[str, Any] | None, replied: bool, reason: str | None
) -> None:
    state = unify.normalize(record(is_replied=True, reply_email_message=message), page=PAGE).state
    assert (state.replied, state.reason) == (replied, reason)
    assert state.as_dict().get("reason") == reason


def test_auto_reply_classification_without_is_replied_changes_nothing() -> None:
    state = unify.normalize(
        record(is_replied=False, reply_email_message=reply("AUTOMATED")), page=PAGE
    ).state
    assert (state.replied, state.reason) == (False, None)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"id": "m", "classifications": "AUTOMATED"}, "reply_email_message.classifications"),
        ({"id": "m", "classifications": ["AUTOMATED"]}, "reply_email_message.classifications[0]"),
        (
            {"id": "m", "classifications": [{"id": "c", "category": 7}]},
            "reply_email_message.classifications.category",
        ),
        ("m1", "reply_email_message"),
    ],
)
def test_bad_reply_message_is_a_record_error(message: Any, field: str) -> None:
    with pytest.raises(RecordError, match=re.escape(repr(field))):
        unify.normalize(record(is_replied=True, reply_email_message=message), page=PAGE)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("2023-11-07T05:31:56Z", "2023-11-07T05:31:56Z"),
        ("2023-11-07T05:31:56.123456Z", "2023-11-07T05:31:56.123456Z"),
        ("2023-11-07T05:31:56+02:00", "2023-11-07T05:31:56+02:00"),
        ("2023-11-07t05:31:56z", "2023-11-07T05:31:56Z"),
    ],
)
def test_updated_at_with_a_zone_is_kept(value: str, kept: str) -> None:
    assert unify.normalize(record(updated_at=value), page=PAGE).updated_at == kept


@pytest.mark.parametrize(
    "value",
    [
        "2023-11-07T05:31:56",  # no zone: cannot be compared or sent back as updated_after
        "2023-11-07",
        "yesterday",
        "2023-13-07T05:31:56Z",
        "2023-11-07 05:31:56Z",
        "",
    ],
)
def test_bad_updated_at_is_a_record_error_naming_the_field(value: str) -> None:
    with pytest.raises(RecordError, match="'updated_at'"):
        unify.normalize(record(updated_at=value), page=PAGE)


@pytest.mark.parametrize(
    ("started_at", "ended_at", "raw", "status"),
    [
        (None, None, "DRAFT", Status.PENDING),
        ("2023-11-07T06:05:00Z", None, "IN_PROGRESS", Status.ACTIVE),
        ("2023-11-07T06:05:00Z", "2023-11-08T06:05:00Z", "FINISHED", Status.FINISHED),
    ],
)
def test_missing_status_falls_back_to_timestamps(
    started_at: str | None, ended_at: str | None, raw: str, status: Status
) -> None:
    rec = record(started_at=started_at, ended_at=ended_at)
    del rec["status"]
    del rec["enrolled_by_play"]
    state = unify.normalize(rec, page=PAGE).state
    assert (state.raw_status, state.status) == (raw, status)


def test_missing_status_and_started_at_keys_counts_as_running() -> None:
    rec = record()
    for key in ("status", "started_at", "ended_at"):
        del rec[key]
    assert unify.normalize(rec, page=PAGE).state.status is Status.ACTIVE
