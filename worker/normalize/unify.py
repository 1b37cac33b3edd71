"""Unify enrollment -> Enrollment (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping
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


def _raw_status(record: Mapping[str, Any]) -> str:
    """Older docs omit `status`; then ended_at is the only sign the enrollment finished."""
    status = fields.optional_str(record, "status")
    if status is not None:
        return status
    return "FINISHED" if fields.optional_str(record, "ended_at") else "IN_PROGRESS"


def _status(raw_status: str, record: Mapping[str, Any]) -> Status:
    if fields.optional_bool(record, "is_canceled") or fields.optional_bool(record, "is_excluded"):
        return Status.REMOVED
    status = STATUS_TABLE.get(raw_status, UNKNOWN_STATUS)
    if status is Status.ACTIVE:
        if fields.optional_bool(record, "is_blocked"):
            return Status.BLOCKED
        if fields.optional_bool(record, "is_paused"):
            return Status.PAUSED
    return status


def enrollment_id(record: Mapping[str, Any], page: RawPage) -> str:
    return fields.required_id(record, "id")


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    enrollment_id = fields.required_id(record, "id")  # Unify records carry their own sequence
    sequence = fields.required_object(record, "sequence")
    person = fields.required_object(record, "person")
    raw_status = _raw_status(record)
    return Enrollment(
        enrollment_id=enrollment_id,
        sequence=SequenceRef(
            id=fields.required_id(sequence, "id", within="sequence"),
            name=fields.optional_str(sequence, "name", within="sequence"),
        ),
        contact=Contact(
            id=fields.required_id(person, "id", within="person"),
            email=fields.optional_str(person, "email", within="person"),
            name=fields.full_name(
                fields.optional_str(person, "first_name", within="person"),
                fields.optional_str(person, "last_name", within="person"),
            ),
            company=None,
        ),
        state=State(
            status=_status(raw_status, record),
            raw_status=raw_status,
            step=None,
            step_id=None,
            replied=fields.optional_bool(record, "is_replied"),
            bounced=fields.optional_bool(record, "is_bounced"),
            opted_out=fields.optional_bool(record, "is_opted_out"),
        ),
        updated_at=fields.required_str(record, "updated_at"),
    )
