"""Whippy folded contact -> Enrollment (SPEC §5).

The record is one contact's step-contact rows in one sequence, folded by the source (shape
documented in worker/sources/whippy.py). The contact's state is its NEWEST row: the latest
`updated_at`, then the furthest step position (rows written together, e.g. the old step
marked complete and the next one started), then the later row in the listing. A `complete`/
`finished` row ends the run (Whippy marks a removed contact finished on the step it was on)
unless the contact moved on from it to a later step in the same run.
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
    # Finished on ANY step ends the run: Whippy marks a removed contact `finished` on the step
    # it was on, and a contact that moves on gets a new row on the next step instead.
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


_Read = tuple[str, str, Mapping[str, Any], fields.StateFields, str, Mapping[str, int]]


def _read(record: Mapping[str, Any]) -> _Read:
    """(sequence id, contact id, contact, state fields, updated_at, step positions): every
    check `normalize` makes, in its order, with no Enrollment built."""
    sequence_id = fields.required_id(record, "sequence_id")
    contact = fields.required_object(record, "contact")
    contact_id = fields.required_id(contact, "id", within="contact")
    steps = _steps(record)
    rows = _rows(record)
    at, newest, updated = _newest(rows, steps)
    raw_status = fields.required_str(newest, "status", within=at)
    step_id = fields.required_id(newest, "step_id", within=at)
    position = steps.get(step_id)  # None: a step the sequence no longer lists
    for name in ("email", "name", "phone"):
        fields.optional_text(contact, name, within="contact")
    state = (
        STATUS_TABLE.get(raw_status.lower(), UNKNOWN_STATUS),
        raw_status,
        None if position is None else position + 1,
        step_id,
        # From the documented `responded=true` filter (the source's listing), never a row.
        fields.optional_bool(record, "responded"),
        None,
        _any(rows, "unsubscribed"),
        None,
    )
    return sequence_id, contact_id, contact, state, updated.isoformat(), steps


def peek(record: Mapping[str, Any], *, page: RawPage) -> fields.Peek:
    """What `normalize` would say about the record's id and state (worker/normalize).
    The source folds a contact's step rows into one record, so this is per enrollment too;
    most of its cost is the rows' timestamps, which the state needs anyway."""
    sequence_id, contact_id, _, state, updated, _ = _read(record)
    return f"{sequence_id}:{contact_id}", updated, state


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    sequence_id, contact_id, contact, state, updated, steps = _read(record)
    status, raw_status, step, step_id, replied, bounced, opted_out, reason = state
    name = page.sequence.name if page.sequence and page.sequence.id == sequence_id else None
    return Enrollment(
        enrollment_id=f"{sequence_id}:{contact_id}",
        sequence=SequenceRef(id=sequence_id, name=name, steps_total=_steps_total(steps)),
        contact=Contact(
            id=contact_id,
            email=fields.optional_text(contact, "email", within="contact"),
            name=fields.optional_text(contact, "name", within="contact"),
            company=None,
            phone=fields.optional_text(contact, "phone", within="contact"),
        ),
        state=State(
            status=status,
            raw_status=raw_status,
            step=step,
            step_id=step_id,
            replied=replied,
            bounced=bounced,
            opted_out=opted_out,
            reason=reason,
        ),
        updated_at=updated,
    )


def _steps(record: Mapping[str, Any]) -> Mapping[str, int]:
    steps = fields.required_object(record, "steps")
    for step_id, position in steps.items():
        if isinstance(position, bool) or not isinstance(position, int):
            raise fields.RecordError(f"record field 'steps.{step_id}' is not an integer")
    return steps


def _steps_total(steps: Mapping[str, int]) -> int | None:
    """The last step's number (steps are numbered position + 1, so step <= steps_total)."""
    last = max(steps.values(), default=-1) + 1
    return last if last >= 1 else None


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
    """(`rows[i]` label, row, latest updated_at) of the row that holds the contact's state.

    That is the newest row, unless it is a completed step the contact moved on from: a row on
    a later step created no earlier than it (the same run; Whippy may write the two apart).
    Then the run goes on at the newest of those later rows.
    """
    keyed: list[tuple[datetime, int, int]] = []
    for index, row in enumerate(rows):
        updated = _timestamp(row, "updated_at", within=f"rows[{index}]")
        step_id = row.get("step_id")
        known = isinstance(step_id, str | int) and not isinstance(step_id, bool)
        keyed.append((updated, steps.get(str(step_id), -1) if known else -1, index))
    latest, position, index = max(keyed)  # _rows refuses an empty list
    if _ends_run(rows[index]):
        created = _created(rows[index])
        later = [
            key
            for key in keyed
            if key[1] > position
            and created is not None
            and (started := _created(rows[key[2]])) is not None
            and started >= created
        ]
        if later:
            _, _, index = max(later)
    return f"rows[{index}]", rows[index], latest


def _ends_run(row: Mapping[str, Any]) -> bool:
    status = row.get("status")
    return isinstance(status, str) and STATUS_TABLE.get(status.lower()) is Status.FINISHED


def _created(row: Mapping[str, Any]) -> datetime | None:
    text = row.get("created_at")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


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
