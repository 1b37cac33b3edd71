"""Typed reads of raw record fields; a bad field raises MalformedResponse naming it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any

from worker.enrollment import Status
from worker.errors import MalformedResponse

if TYPE_CHECKING:
    from worker.enrollment import Enrollment, State
    from worker.sources.base import RawPage

# A State's fields in its order: status, raw_status, step, step_id, replied, bounced,
# opted_out, reason; codec.encode_state_fields(*fields) == codec.encode_state(state).
StateFields = tuple[
    Status, str, int | None, str | None, bool | None, bool | None, bool | None, str | None
]
Peek = tuple[str, str | None, StateFields]  # enrollment id, updated_at, state fields

_FIELD_IN_MESSAGE = re.compile(r"record field '([^']*)'")


class RecordError(MalformedResponse):
    """A record lacks a required field or has one of the wrong type.

    `field` names the bad field; `enrollment_id` is the record's enrollment id when it could be
    read (the record is then quarantined alone), None when it could not (the listing is then
    incomplete: no absence removals).
    """

    def __init__(
        self, message: str, *, field: str | None = None, enrollment_id: str | None = None
    ) -> None:
        super().__init__(message)
        found = _FIELD_IN_MESSAGE.search(message)
        self.field = field or (found.group(1) if found else None)
        self.enrollment_id = enrollment_id


class UnreadableId(RecordError):
    """The record's enrollment id itself cannot be read."""


def _fail(field: str, problem: str) -> RecordError:
    return RecordError(f"record field {field!r} {problem}", field=field)


_UNFORESEEN = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
NormalizeFn = Callable[..., "Enrollment"]
IdReader = Callable[[Mapping[str, Any], "RawPage"], str]


def naming_records(read_id: IdReader) -> Callable[[NormalizeFn], NormalizeFn]:
    """Decorates a normalizer so its RecordErrors say which enrollment they are about.

    On failure the record's id is read with `read_id`: if that works too, the error carries the
    enrollment id; if not, an UnreadableId is raised instead.
    """

    def decorate(normalize: NormalizeFn) -> NormalizeFn:
        @wraps(normalize)
        def wrapper(record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
            if not isinstance(record, Mapping):
                raise UnreadableId("record is not an object")
            try:
                try:
                    return normalize(record, page=page)
                except _UNFORESEEN as unforeseen:
                    # A value no check anticipated: still this record's problem, not the page's.
                    # The message names the kind only: an exception's text may quote the value.
                    raise RecordError(
                        f"record could not be normalized ({type(unforeseen).__name__})"
                    ) from None
            except RecordError as exc:
                if exc.enrollment_id is None and not isinstance(exc, UnreadableId):
                    try:
                        exc.enrollment_id = read_id(record, page)
                    except RecordError as unreadable:
                        raise UnreadableId(unreadable.detail, field=unreadable.field) from None
                raise

        return wrapper

    return decorate


def _name(field: str, within: str | None) -> str:
    """`person.id` rather than `id` when the field sits inside a nested object."""
    return f"{within}.{field}" if within else field


def required_id(record: Mapping[str, Any], field: str, *, within: str | None = None) -> str:
    """Ids may be numbers (Reply.io) or strings (UUIDs); both become strings."""
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise _fail(_name(field, within), "is missing or not an id")
    return str(value)


def required_str(record: Mapping[str, Any], field: str, *, within: str | None = None) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise _fail(_name(field, within), "is missing or not a string")
    return value


def optional_str(record: Mapping[str, Any], field: str, *, within: str | None = None) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(_name(field, within), "is not a string")
    return value


def optional_text(
    record: Mapping[str, Any], field: str, *, within: str | None = None
) -> str | None:
    """A contact field: a string, where an empty one from the provider means unknown."""
    return optional_str(record, field, within=within) or None


def optional_int(record: Mapping[str, Any], field: str, *, within: str | None = None) -> int | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(_name(field, within), "is not an integer")
    return value


def optional_bool(
    record: Mapping[str, Any], field: str, *, within: str | None = None
) -> bool | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(_name(field, within), "is not a boolean")
    return value


def required_object(
    record: Mapping[str, Any], field: str, *, within: str | None = None
) -> Mapping[str, Any]:
    value = record.get(field)
    if not isinstance(value, Mapping):
        raise _fail(_name(field, within), "is missing or not an object")
    return value


def optional_object(
    record: Mapping[str, Any], field: str, *, within: str | None = None
) -> Mapping[str, Any] | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(_name(field, within), "is not an object")
    return value


def state_fields(state: State) -> StateFields:
    return (
        state.status,
        state.raw_status,
        state.step,
        state.step_id,
        state.replied,
        state.bounced,
        state.opted_out,
        state.reason,
    )


def full_name(first: str | None, last: str | None) -> str | None:
    name = " ".join(part for part in (first, last) if part)
    return name or None
