"""Whippy folded contact -> Enrollment (SPEC §5).

The record is one contact's step-contact rows in one sequence, folded by the source (shape
documented in worker/sources/whippy.py). The contact's state is its NEWEST row: the latest
`updated_at`, then the furthest step position (rows written together, e.g. the old step
marked complete and the next one started), then the later row in the listing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import fields
from worker.sources.base import RawPage

# Keys are lower-cased. The contacts listing says `complete`, contact-sequences and webhooks
# say `finished`: both mean the contact completed its step.
STATUS_TABLE: Mapping[str, Status] = {
    "pending": Status.PENDING,
    "active": Status.ACTIVE,
    "moved": Status.ACTIVE,  # moved to another step: still in the sequence
    "inactive": Status.BLOCKED,
    "in-active": Status.BLOCKED,  # the spelling in Whippy's own activepieces piece
    "complete": Status.FINISHED,
    "finished": Status.FINISHED,
    "removed": Status.REMOVED,
}
# A value Whippy adds later keeps its raw_status; the contact still has a row in one of the
# sequence's steps, so the nearest normalized status is active.
UNKNOWN_STATUS = Status.ACTIVE


def enrollment_id(record: Mapping[str, Any], page: RawPage) -> str:
    contact = fields.required_object(record, "contact")
    contact_id = fields.required_id(contact, "id", within="contact")
    return f"{fields.required_id(record, 'sequence_id')}:{contact_id}"


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    sequence_id = fields.required_id(record, "sequence_id")
    contact = fields.required_object(record, "contact")
    contact_id = fields.required_id(contact, "id", within="contact")
    steps = _steps(record)
    last_position = fields.optional_int(record, "last_position")
    rows = _rows(record)
    at, newest, updated = _newest(rows, steps)
    raw_status = fields.required_str(newest, "status", within=at)
    step_id = fields.required_id(newest, "step_id", within=at)
    position = steps.get(step_id)  # None: a step the sequence no longer lists
    name = page.sequence.name if page.sequence and page.sequence.id == sequence_id else None
    return Enrollment(
        enrollment_id=f"{sequence_id}:{contact_id}",
        sequence=SequenceRef(id=sequence_id, name=name),
        contact=Contact(
            id=contact_id,
            email=fields.optional_str(contact, "email", within="contact"),
            name=fields.optional_str(contact, "name", within="contact"),
            company=None,
        ),
        state=State(
            status=_status(raw_status, position=position, last_position=last_position),
            raw_status=raw_status,
            step=None if position is None else position + 1,
            step_id=step_id,
            replied=_any(rows, "responded"),  # [inferred] field: null where it is not sent
            bounced=None,
            opted_out=_any(rows, "unsubscribed"),
        ),
        updated_at=updated.isoformat(),
    )


def _status(raw_status: str, *, position: int | None, last_position: int | None) -> Status:
    status = STATUS_TABLE.get(raw_status.lower(), UNKNOWN_STATUS)
    on_last_step = position is not None and last_position is not None and position >= last_position
    if status is Status.FINISHED and not on_last_step:
        return Status.ACTIVE  # a step was completed, not the sequence
    return status


def _steps(record: Mapping[str, Any]) -> Mapping[str, int]:
    steps = fields.required_object(record, "steps")
    for step_id, position in steps.items():
        if isinstance(position, bool) or not isinstance(position, int):
            raise fields.RecordError(f"record field 'steps.{step_id}' is not an integer")
    return steps


def _rows(record: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    rows = record.get("rows")
    if not isinstance(rows, list) or not rows:
        raise fields.RecordError("record field 'rows' is missing or not a non-empty array")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise fields.RecordError(f"record field 'rows[{index}]' is not an object")
    return rows


def _newest(
    rows: Sequence[Mapping[str, Any]], steps: Mapping[str, int]
) -> tuple[str, Mapping[str, Any], datetime]:
    """(`rows[i]` label, row, its updated_at) of the newest row."""
    best: tuple[datetime, int, int] | None = None
    for index, row in enumerate(rows):
        updated = _timestamp(row, "updated_at", within=f"rows[{index}]")
        step_id = row.get("step_id")
        known = isinstance(step_id, str | int) and not isinstance(step_id, bool)
        position = steps.get(str(step_id), -1) if known else -1
        key = (updated, position, index)
        if best is None or key > best:
            best = key
    assert best is not None  # _rows refuses an empty list
    updated, _, index = best
    return f"rows[{index}]", rows[index], updated


def _timestamp(row: Mapping[str, Any], field: str, *, within: str) -> datetime:
    text = fields.required_str(row, field, within=within)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fields.RecordError(f"record field '{within}.{field}' is not a timestamp") from None
    # Whippy's run timestamps come without a zone; treat any such value as UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _any(rows: Sequence[Mapping[str, Any]], field: str) -> bool | None:
    """True if any row says so; None when no row carries the field at all."""
    seen = False
    for index, row in enumerate(rows):
        value = fields.optional_bool(row, field, within=f"rows[{index}]")
        if value:
            return True
        seen = seen or value is not None
    return False if seen else None
