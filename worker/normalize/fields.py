"""Typed reads of raw record fields; a bad field raises MalformedResponse naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.errors import MalformedResponse


class RecordError(MalformedResponse):
    """A record lacks a required field or has one of the wrong type."""


def _fail(field: str, problem: str) -> RecordError:
    return RecordError(f"record field {field!r} {problem}")


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


def full_name(first: str | None, last: str | None) -> str | None:
    name = " ".join(part for part in (first, last) if part)
    return name or None
