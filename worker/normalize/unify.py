"""Unify enrollment -> Enrollment (SPEC §5; schema `Enrollment` in the vendor's OpenAPI spec).

Status: `DRAFT` pending, `IN_PROGRESS` active, `FINISHED` finished; `is_canceled` or
`is_excluded` removed. A running enrollment is blocked when it, or its mailbox, cannot send
(`is_blocked`, `mailbox.is_unauthorized`), else paused when it, its sequence or its mailbox is
paused (`is_paused`, `sequence.is_paused`, `mailbox.is_paused`): blocked wins, it needs a human.

An auto-reply is not a reply: when every categorized classification of `reply_email_message`
is `AUTOMATED` (the spec's `ReplyEmailClassificationCategory`), `replied` stays false and the
state's `reason` says `auto_reply`. A reply with no category (the docs example has
classifications with `id` only) or with any human category counts as a reply: missing a real
reply is worse than reporting an auto-reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import fields
from worker.sources.base import RawPage

STATUS_TABLE: Mapping[str, Status] = {
    "DRAFT": Status.PENDING,
    "IN_PROGRESS": Status.ACTIVE,
    "FINISHED": Status.FINISHED,
}
# A status Unify adds later keeps its raw_status and counts as still running.
UNKNOWN_STATUS = Status.ACTIVE
AUTOMATED = "AUTOMATED"
AUTO_REPLY_REASON = "auto_reply"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _raw_status(record: Mapping[str, Any]) -> str:
    """The docs example omits `status` (the spec requires it). Then the timestamps tell:
    `ended_at` set is FINISHED; `started_at` explicitly null is DRAFT (not started yet);
    anything else is IN_PROGRESS, refined by the flags like a listed status."""
    status = fields.optional_str(record, "status")
    if status is not None:
        return status
    if fields.optional_str(record, "ended_at"):
        return "FINISHED"
    if "started_at" in record and fields.optional_str(record, "started_at") is None:
        return "DRAFT"
    return "IN_PROGRESS"


def _flag(obj: Mapping[str, Any] | None, field: str, within: str | None = None) -> bool:
    return bool(obj is not None and fields.optional_bool(obj, field, within=within))


def _status(raw_status: str, record: Mapping[str, Any]) -> Status:
    if _flag(record, "is_canceled") or _flag(record, "is_excluded"):
        return Status.REMOVED
    status = STATUS_TABLE.get(raw_status, UNKNOWN_STATUS)
    if status is not Status.ACTIVE:
        return status
    sequence = fields.optional_object(record, "sequence")
    mailbox = fields.optional_object(record, "mailbox")
    if _flag(record, "is_blocked") or _flag(mailbox, "is_unauthorized", "mailbox"):
        return Status.BLOCKED
    if (
        _flag(record, "is_paused")
        or _flag(sequence, "is_paused", "sequence")
        or _flag(mailbox, "is_paused", "mailbox")
    ):
        return Status.PAUSED
    return status


def is_auto_reply(record: Mapping[str, Any]) -> bool:
    """True when the reply's classifications say AUTOMATED and nothing else."""
    message = fields.optional_object(record, "reply_email_message")
    if message is None:
        return False
    within = "reply_email_message"
    classifications = message.get("classifications")
    if classifications is None:
        return False
    if not isinstance(classifications, list):
        raise fields.RecordError(f"record field '{within}.classifications' is not a list")
    categories = set()
    for index, item in enumerate(classifications):
        if not isinstance(item, Mapping):
            raise fields.RecordError(
                f"record field '{within}.classifications[{index}]' is not an object"
            )
        category = fields.optional_str(item, "category", within=f"{within}.classifications")
        if category is not None:
            categories.add(category.upper())
    return categories == {AUTOMATED}


def updated_at(record: Mapping[str, Any]) -> str:
    """An RFC 3339 date-time with a zone (it becomes the next `updated_after`)."""
    value = fields.required_str(record, "updated_at").upper()
    if _RFC3339.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise fields.RecordError("record field 'updated_at' is not an RFC 3339 time with a zone")


def enrollment_id(record: Mapping[str, Any], page: RawPage) -> str:
    return fields.required_id(record, "id")


def _read(record: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], State]:
    """(sequence, person, state): every check `normalize` makes, no Enrollment built."""
    sequence = fields.required_object(record, "sequence")
    person = fields.required_object(record, "person")
    raw_status = _raw_status(record)
    replied = fields.optional_bool(record, "is_replied")
    auto_reply = bool(replied) and is_auto_reply(record)
    # In the order `normalize` always read them: the first bad field is the one named.
    fields.required_id(sequence, "id", within="sequence")
    fields.optional_str(sequence, "name", within="sequence")
    fields.required_id(person, "id", within="person")
    for name in ("email", "first_name", "last_name"):
        fields.optional_str(person, name, within="person")
    state = State(
        status=_status(raw_status, record),
        raw_status=raw_status,
        step=None,
        step_id=None,
        replied=False if auto_reply else replied,
        bounced=fields.optional_bool(record, "is_bounced"),
        opted_out=fields.optional_bool(record, "is_opted_out"),
        reason=AUTO_REPLY_REASON if auto_reply else None,
    )
    return sequence, person, state


def peek(record: Mapping[str, Any], *, page: RawPage) -> fields.Peek:
    """What `normalize` would say about the record's id and state (worker/normalize)."""
    enrollment_id = fields.required_id(record, "id")
    _, _, state = _read(record)
    return enrollment_id, updated_at(record), fields.state_fields(state)


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    enrollment_id = fields.required_id(record, "id")  # Unify records carry their own sequence
    sequence, person, state = _read(record)
    return Enrollment(
        enrollment_id=enrollment_id,
        sequence=SequenceRef(
            id=fields.required_id(sequence, "id", within="sequence"),
            name=fields.optional_str(sequence, "name", within="sequence"),
        ),
        contact=Contact(
            id=fields.required_id(person, "id", within="person"),
            email=fields.optional_str(person, "email", within="person") or None,
            name=fields.full_name(
                fields.optional_str(person, "first_name", within="person"),
                fields.optional_str(person, "last_name", within="person"),
            ),
            company=None,
        ),
        state=state,
        updated_at=updated_at(record),
    )
