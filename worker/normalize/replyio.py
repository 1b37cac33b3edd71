"""Reply.io sequence contact (v3 or v4 listing) -> Enrollment (SPEC §5).

The two versions differ only in where each fact sits; the tables below say where:

| fact | v3 (`statusInSequence` record) | v4 (`status` record) |
| --- | --- | --- |
| status | `statusInSequence` (lower-case) | `status` (PascalCase) |
| step | `currentStep.displayName` (a number as a string) | `currentStep` (int) |
| step_id | `currentStep.stepId` | none |
| replied / bounced | `emailDisposition.isReplied` / `.isBounced` | not exposed (null) |
| opted_out | `isOptedOut` | `isOptedOut` |

The v3 extended-state listing (`/contacts/extended`, beta) nests its state as `status{status,
replied, bounced, ...}` with `currentStep{stepId, stepNumber}`; it is read too.

An auto-reply is not a reply: a contact whose status is Out of office (Reply pauses contacts
that sent an auto-reply) or whose `subStatus` is `AutoReplied` never has `replied` set; the
state keeps `reason = "AutoReplied"` so it stays visible.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Annotated, Any, cast

import msgspec

from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import fields
from worker.sources.base import RawPage

# Keys are lower-cased with separators dropped: v4 sends PascalCase, v3 lower-case.
STATUS_TABLE: Mapping[str, Status] = {
    "active": Status.ACTIVE,
    "paused": Status.PAUSED,
    "outofoffice": Status.PAUSED,
    "inactive": Status.BLOCKED,
    "missingdata": Status.BLOCKED,  # the newer UI's name for Inactive
    "finished": Status.FINISHED,
}
# A value Reply adds later keeps its raw_status; the contact is still in the sequence, so the
# nearest normalized status is active.
UNKNOWN_STATUS = Status.ACTIVE
AUTO_REPLY_STATUSES = frozenset({"outofoffice"})
AUTO_REPLY_SUB_STATUS = "autoreplied"
AUTO_REPLY_REASON = "AutoReplied"


@lru_cache(maxsize=512)  # a handful of statuses, met on every record
def _key(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())


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
    state = _state(record, page)
    name = page.sequence.name if page.sequence and page.sequence.id == sequence_id else None
    return Enrollment(
        enrollment_id=f"{sequence_id}:{contact_id}",
        sequence=SequenceRef(id=sequence_id, name=name),
        contact=Contact(
            id=contact_id,
            email=fields.optional_text(record, "email"),
            name=fields.full_name(
                fields.optional_text(record, "firstName"), fields.optional_text(record, "lastName")
            ),
            company=fields.optional_text(record, "company"),
        ),
        state=state,
    )


class _Odd(Exception):
    """A value `peek` does not read plainly: the full normalizer decides about the record."""


def _plain_id(value: Any) -> str:
    """fields.required_id for the plain cases (int, non-empty str)."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and value:
        return value  # type: ignore[no-any-return]
    raise _Odd


# (status, subStatus) -> (normalized status, reason): a handful of pairs, met on every record.
_MEANINGS: dict[tuple[str, str | None], tuple[Status, str | None]] = {}
_MEANINGS_MAX = 1024
_ABSENT = object()


def _meaning(raw_status: str, sub_status: str | None) -> tuple[Status, str | None]:
    key = _key(raw_status)
    auto = key in AUTO_REPLY_STATUSES or (
        sub_status is not None and _key(sub_status) == AUTO_REPLY_SUB_STATUS
    )
    meaning = (STATUS_TABLE.get(key, UNKNOWN_STATUS), AUTO_REPLY_REASON if auto else None)
    if len(_MEANINGS) < _MEANINGS_MAX:
        _MEANINGS[raw_status, sub_status] = meaning
    return meaning


# Every field `peek` reads from a v4 record, in one call (Reply's v4 listing sends them all).
_V4_FIELDS = itemgetter(
    "email", "firstName", "lastName", "company", "contactId", "sequenceId", "status",
    "currentStep", "isOptedOut", "subStatus",
)  # fmt: skip


def peek(record: Mapping[str, Any], *, page: RawPage) -> fields.Peek:
    """What `normalize` would say about the record's id and state (worker/normalize).
    Written for speed: it runs for every record of every poll."""
    try:
        email, first, last, company, contact_id, sequence_id, raw_status, step, opted_out, sub = (
            _V4_FIELDS(record)
        )
    except KeyError:
        return _peek_any(record, page)
    if (
        type(raw_status) is not str
        or "statusInSequence" in record
        or page.extra.get("api_version") == "v3"
    ):
        return _peek_any(record, page)
    # The checks `normalize` makes, so a record read here is one it would not quarantine.
    if (
        (email is not None and type(email) is not str)
        or (first is not None and type(first) is not str)
        or (last is not None and type(last) is not str)
        or (company is not None and type(company) is not str)
        or (step is not None and type(step) is not int)
        or (opted_out is not None and opted_out is not True and opted_out is not False)
        or (sub is not None and type(sub) is not str)
    ):
        raise _Odd
    # fields.required_id's plain cases, inline: an int, or a non-empty string.
    if type(contact_id) is not int:
        contact_id = _plain_id(contact_id)
    if type(sequence_id) is not int:
        sequence_id = _plain_id(sequence_id)
    status, reason = _MEANINGS.get((raw_status, sub)) or _meaning(raw_status, sub)
    return (
        f"{sequence_id}:{contact_id}",
        None,
        (status, raw_status, step, None, None, None, opted_out, reason),
    )


# fields.required_id's plain cases: an int, or a non-empty string.
_TypedId = int | Annotated[str, msgspec.Meta(min_length=1)]


class ContactV4(msgspec.Struct, gc=False):
    """What `peek` reads from a v4 contact record (`_V4_FIELDS`), typed as its fast path wants
    it: a page with a record of any other shape fails the typed decode and is read as dicts
    (worker/sources/typed.py)."""

    contactId: _TypedId  # the wire's names
    sequenceId: _TypedId
    status: str
    currentStep: int | None
    isOptedOut: bool | None
    subStatus: str | None
    email: str | None
    firstName: str | None
    lastName: str | None
    company: str | None
    statusInSequence: msgspec.UnsetType = msgspec.UNSET  # must be absent: a v3 record


class ContactsPageV4(msgspec.Struct, gc=False):
    items: list[ContactV4]
    hasMore: bool


def read_typed(
    records: Sequence[ContactV4],
    page: RawPage,
    *,
    states: dict[str, str],
    ids: list[str],
    keys: dict[Hashable, str],
    encode: Callable[..., str],
    odd: Callable[[int], None],
) -> None:
    """`peek` over a typed page (worker/detect/reading.py), a page at a time: each record's
    enrollment id -> its state key (`encode(*state fields)`, remembered in `keys`) into
    `states`, and the ids in record order onto `ids`. A page of a v3 listing goes to
    `odd`, record by record (`peek` reads those as v3 records). A record read here is later
    normalized from ContactV4's fields alone: they are every field `normalize` reads from it."""
    if page.extra.get("api_version") == "v3":
        for index in range(len(records)):
            odd(index)
        return
    page_ids = [f"{r.sequenceId}:{r.contactId}" for r in records]
    tokens = [(r.status, r.subStatus, r.currentStep, r.isOptedOut) for r in records]
    found = list(map(keys.get, tokens))
    if None in found:
        for index, token in enumerate(tokens):
            if found[index] is None:
                raw_status, sub_status, step, opted_out = token
                status, reason = _MEANINGS.get((raw_status, sub_status)) or _meaning(
                    raw_status, sub_status
                )
                key = encode(status, raw_status, step, None, None, None, opted_out, reason)
                if len(keys) < _MEANINGS_MAX:
                    keys[token] = key
                found[index] = key
    states.update(zip(page_ids, cast("list[str]", found), strict=True))
    ids += page_ids


def _peek_any(record: Mapping[str, Any], page: RawPage) -> fields.Peek:
    """`peek` for any shape: v3, the extended state, or fields left out."""
    get = record.get
    # The contact fields `normalize` checks (optional strings), so a record read here is one
    # it would not quarantine.
    email, first, last, company = get("email"), get("firstName"), get("lastName"), get("company")
    if (
        (email is not None and type(email) is not str)
        or (first is not None and type(first) is not str)
        or (last is not None and type(last) is not str)
        or (company is not None and type(company) is not str)
    ):
        raise _Odd
    contact_id = record["contactId"]
    sequence_id = get("sequenceId", _ABSENT)
    # fields.required_id's plain cases, inline: an int, or a non-empty string.
    if type(contact_id) is not int:
        contact_id = _plain_id(contact_id)
    if sequence_id is _ABSENT:
        sequence_id = page.sequence.id  # type: ignore[union-attr]
    elif type(sequence_id) is not int:
        sequence_id = _plain_id(sequence_id)
    raw_status = get("status")
    if type(raw_status) is not str or "statusInSequence" in record:  # v3 or extended state
        return f"{sequence_id}:{contact_id}", None, fields.state_fields(_state(record, page))
    if page.extra.get("api_version") == "v3":
        raise _Odd
    step, opted_out, sub_status = get("currentStep"), get("isOptedOut"), get("subStatus")
    if (
        (step is not None and type(step) is not int)
        or (opted_out is not None and opted_out is not True and opted_out is not False)
        or (sub_status is not None and type(sub_status) is not str)
    ):
        raise _Odd
    status, reason = _MEANINGS.get((raw_status, sub_status)) or _meaning(raw_status, sub_status)
    return (
        f"{sequence_id}:{contact_id}",
        None,
        (status, raw_status, step, None, None, None, opted_out, reason),
    )


def _state(record: Mapping[str, Any], page: RawPage) -> State:
    if isinstance(record.get("status"), Mapping):
        return _extended_state(record)
    if page.extra.get("api_version") == "v3" or "statusInSequence" in record:
        return _v3_state(record)
    return _v4_state(record)


def _auto_replied(raw_status: str, record: Mapping[str, Any]) -> bool:
    sub_status = fields.optional_str(record, "subStatus")
    return _key(raw_status) in AUTO_REPLY_STATUSES or (
        sub_status is not None and _key(sub_status) == AUTO_REPLY_SUB_STATUS
    )


def _v4_state(record: Mapping[str, Any]) -> State:
    raw_status = fields.required_str(record, "status")
    auto = _auto_replied(raw_status, record)
    return State(
        status=STATUS_TABLE.get(_key(raw_status), UNKNOWN_STATUS),
        raw_status=raw_status,
        step=fields.optional_int(record, "currentStep"),
        step_id=None,
        replied=None,  # v4 exposes no reply signal
        bounced=None,
        opted_out=fields.optional_bool(record, "isOptedOut"),
        reason=AUTO_REPLY_REASON if auto else None,
    )


def _v3_state(record: Mapping[str, Any]) -> State:
    raw_status = fields.required_str(record, "statusInSequence")
    auto = _auto_replied(raw_status, record)
    disposition = fields.optional_object(record, "emailDisposition") or {}
    within = "emailDisposition"
    replied = fields.optional_bool(disposition, "isReplied", within=within)
    step = fields.optional_object(record, "currentStep") or {}
    return State(
        status=STATUS_TABLE.get(_key(raw_status), UNKNOWN_STATUS),
        raw_status=raw_status,
        step=_step_number(step),
        step_id=_step_id(step),
        replied=False if auto and replied is not None else replied,
        bounced=fields.optional_bool(disposition, "isBounced", within=within),
        opted_out=fields.optional_bool(record, "isOptedOut"),
        reason=AUTO_REPLY_REASON if auto else None,
    )


def _extended_state(record: Mapping[str, Any]) -> State:
    status = fields.required_object(record, "status")
    raw_status = fields.required_str(status, "status", within="status")
    auto = _auto_replied(raw_status, record)
    replied = fields.optional_bool(status, "replied", within="status")
    step = fields.optional_object(record, "currentStep") or {}
    return State(
        status=STATUS_TABLE.get(_key(raw_status), UNKNOWN_STATUS),
        raw_status=raw_status,
        step=fields.optional_int(step, "stepNumber", within="currentStep"),
        step_id=_step_id(step),
        replied=False if auto and replied is not None else replied,
        bounced=fields.optional_bool(status, "bounced", within="status"),
        opted_out=fields.optional_bool(record, "isOptedOut"),
        reason=AUTO_REPLY_REASON if auto else None,
    )


def _step_number(step: Mapping[str, Any]) -> int | None:
    """`displayName` is the step's number as a string ("2"); anything else has no number."""
    display = step.get("displayName")
    if isinstance(display, bool):
        raise fields.RecordError("record field 'currentStep.displayName' is not a step number")
    if isinstance(display, int):
        return display
    if isinstance(display, str) and display.strip().isdigit():
        return int(display.strip())
    return None


def _step_id(step: Mapping[str, Any]) -> str | None:
    if step.get("stepId") is None:
        return None
    return fields.required_id(step, "stepId", within="currentStep")
