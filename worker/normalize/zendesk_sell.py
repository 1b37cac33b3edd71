"""Zendesk Sell sequence enrollment -> Enrollment (SPEC §5).

Sell exposes no replied/bounced/opted-out signal: those flags are None, never guessed from
`finished_reason` (whose values beyond `manual` are undocumented). The reason is kept as the
state's `reason` so events carry it. The enrollment names its lead or contact only by
`resource_type`/`resource_id`: the contact keeps both (`contact.type`), and the pipeline asks
the source to fill in name, email and company (ZendeskSellSource.contacts) for the
enrollments that produce events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import fields
from worker.sources.base import RawPage
from worker.sources.zendesk_sell import SEQUENCE_NAMES, nested

# Keys are lower-cased; `blocked` is [inferred] (the docs describe the state, not its literal).
STATUS_TABLE: Mapping[str, Status] = {
    "active": Status.ACTIVE,
    "blocked": Status.BLOCKED,
    "finished": Status.FINISHED,
}


def unknown_status(record: Mapping[str, Any]) -> Status:
    """A state Sell adds later keeps its raw_status. Nearest: finished once Sell has stamped
    `finished_at`, else active (the enrollment is still listed, so still in its sequence)."""
    return Status.FINISHED if fields.optional_str(record, "finished_at") else Status.ACTIVE


def _position(record: Mapping[str, Any], field: str) -> int | None:
    """A 0-based step position; a negative one ("no step yet") counts as unknown."""
    value = fields.optional_int(record, field)
    return value if value is not None and value >= 0 else None


def step(record: Mapping[str, Any]) -> int | None:
    """1-based: `current_step_position` + 1 where sent, else `previously_executed_step_position`
    + 1 (the fixture's only position field), else None (no step, so no step_advanced)."""
    for field in ("current_step_position", "previously_executed_step_position"):
        position = _position(record, field)
        if position is not None:
            return position + 1
    return None


def _sequence(record: Mapping[str, Any], page: RawPage) -> tuple[str, str | None, int | None]:
    """(id, name, steps_total): plain values, so `peek` builds nothing."""
    sequence = nested(record, "sequence")
    steps_total = None
    if sequence is None:
        if "sequence" in record:
            raise fields.RecordError("record field 'sequence' is not an object")
        # Not in the fixture, but the create body names it so: tolerated when flat.
        sequence_id = fields.required_id(record, "sequence_id")
        name = None
    else:
        sequence_id = fields.required_id(sequence, "id", within="sequence.data")
        name = fields.optional_str(sequence, "name", within="sequence.data")
        steps_total = _steps_total(sequence.get("steps_total"))
    if name is None:
        names = page.extra.get(SEQUENCE_NAMES)
        found = names.get(sequence_id) if isinstance(names, Mapping) else None
        name = found if isinstance(found, str) else None
    return sequence_id, name, steps_total


def _steps_total(value: Any) -> int | None:
    """The summary's documented `steps_total`. It only describes (Slack's "step 2 of 5"): a
    missing or odd value reads as unknown instead of failing the record."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def enrollment_id(record: Mapping[str, Any], page: RawPage) -> str:
    return fields.required_id(record, "id")


_Read = tuple[str, tuple[str, str | None, int | None], str, str | None, fields.StateFields]


def _read(record: Mapping[str, Any], page: RawPage) -> _Read:
    """(enrollment id, (sequence id, name, steps total), contact id, contact type, state)."""
    enrollment_id = fields.required_id(record, "id")
    raw_status = fields.required_str(record, "state")
    sequence = _sequence(record, page)
    contact_id = fields.required_id(record, "resource_id")
    contact_type = (fields.optional_str(record, "resource_type") or "").lower() or None
    state = (
        STATUS_TABLE.get(raw_status.lower()) or unknown_status(record),
        raw_status,
        step(record),
        None,  # step ids live only in the sequence definition
        None,
        None,
        None,
        fields.optional_str(record, "finished_reason"),
    )
    return enrollment_id, sequence, contact_id, contact_type, state


def peek(record: Mapping[str, Any], *, page: RawPage) -> fields.Peek:
    """What `normalize` would say about the record's id and state (worker/normalize)."""
    enrollment_id, _, _, _, state = _read(record, page)
    return enrollment_id, None, state


@fields.naming_records(enrollment_id)
def normalize(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
    enrollment_id, (sequence_id, name, steps_total), contact_id, contact_type, state = _read(
        record, page
    )
    status, raw_status, position, step_id, replied, bounced, opted_out, reason = state
    return Enrollment(
        enrollment_id=enrollment_id,
        sequence=SequenceRef(id=sequence_id, name=name, steps_total=steps_total),
        contact=Contact(id=contact_id, type=contact_type),
        state=State(
            status=status,
            raw_status=raw_status,
            step=position,
            step_id=step_id,
            replied=replied,
            bounced=bounced,
            opted_out=opted_out,
            reason=reason,
        ),
        updated_at=None,  # not in the official fixture; a full scan never needs it
    )
