"""Reply.io v4 sequence contact -> Enrollment (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import fields
from worker.sources.base import RawPage

# Keys are lower-cased: v4 sends PascalCase, v3 lower-case.
STATUS_TABLE: Mapping[str, Status] = {
    "active": Status.ACTIVE,
    "paused": Status.PAUSED,
    "outofoffice": Status.PAUSED,
    "inactive": Status.BLOCKED,
    "finished": Status.FINISHED,
}
# A value Reply adds later keeps its raw_status; the contact is still in the sequence, so the
# nearest normalized status is active.
UNKNOWN_STATUS = Status.ACTIVE


def _ids(record: Mapping[str, Any], page: RawPage) -> tuple[str, str]:
    contact_id = fields.required_id(record, "contactId")
    if "sequenceId" in record:
        return fields.required_id(record, "sequenceId"), contact_id
    if page.sequence is not None:
        return page.sequence.id, contact_id
    raise fields.RecordError("record field 'sequenceId' is missing")


def enrollment_id(record: Mapping[str, Any], page: RawPage) -> str:
    sequence_id, contact_id = _ids(record, page)
    return f"{sequence_id}:{contact_id}"


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    sequence_id, contact_id = _ids(record, page)
    raw_status = fields.required_str(record, "status")
    name = page.sequence.name if page.sequence and page.sequence.id == sequence_id else None
    return Enrollment(
        enrollment_id=f"{sequence_id}:{contact_id}",
        sequence=SequenceRef(id=sequence_id, name=name),
        contact=Contact(
            id=contact_id,
            email=fields.optional_str(record, "email"),
            name=fields.full_name(
                fields.optional_str(record, "firstName"), fields.optional_str(record, "lastName")
            ),
            company=fields.optional_str(record, "company"),
        ),
        state=State(
            status=STATUS_TABLE.get(raw_status.lower(), UNKNOWN_STATUS),
            raw_status=raw_status,
            step=fields.optional_int(record, "currentStep"),
            step_id=None,
            replied=None,
            bounced=None,
            opted_out=fields.optional_bool(record, "isOptedOut"),
        ),
    )
