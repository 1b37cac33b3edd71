"""Event value, event types, the stable event id and the JSON document (SPEC §6)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

import orjson

from worker.enrollment import Contact, SequenceRef, State


class EventType(StrEnum):
    ENROLLED = "enrollment.enrolled"
    STEP_ADVANCED = "enrollment.step_advanced"
    REPLIED = "enrollment.replied"
    BOUNCED = "enrollment.bounced"
    OPTED_OUT = "enrollment.opted_out"
    PAUSED = "enrollment.paused"
    RESUMED = "enrollment.resumed"
    FINISHED = "enrollment.finished"
    REMOVED = "enrollment.removed"
    STATUS_CHANGED = "enrollment.status_changed"


class HealthType(StrEnum):
    """Source health notices: opt-in, never selected by "*" or enrollment globs."""

    FAILING = "source.failing"
    RECOVERED = "source.recovered"


HEALTH_PREFIX = "source."
ALL_EVENT_TYPES: tuple[str, ...] = (
    *(t.value for t in EventType),
    *(t.value for t in HealthType),
)


def matches_any(event_type: str, patterns: tuple[str, ...]) -> bool:
    """True when `event_type` matches one of the globs ("*", "enrollment.*", exact names)."""
    if event_type.startswith(HEALTH_PREFIX):
        patterns = tuple(p for p in patterns if p.startswith(HEALTH_PREFIX))
    return any(fnmatchcase(event_type, p) for p in patterns)


def event_id(*, source: str, enrollment_id: str, event_type: str, change_key: str) -> str:
    """Deterministic id: the same observed change always yields the same id.

    `change_key` identifies the observation (listing generation plus the previous and current
    encoded states), so replaying or re-committing one change never mints a second id.
    """
    digest = hashlib.blake2b(
        "\x1f".join((source, enrollment_id, event_type, change_key)).encode(),
        digest_size=16,
    ).hexdigest()
    return f"evt_{digest}"


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z, as in the SPEC example."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    id: str
    type: EventType
    source: str
    provider: str
    enrollment_id: str
    sequence: SequenceRef
    contact: Contact
    previous: State | None
    current: State | None
    detected_at: datetime

    def document(self) -> dict[str, Any]:
        stamp = format_timestamp(self.detected_at)
        return {
            "type": self.type.value,
            "timestamp": stamp,
            "data": {
                "id": self.id,
                "source": self.source,
                "provider": self.provider,
                "enrollment_id": self.enrollment_id,
                "sequence": {"id": self.sequence.id, "name": self.sequence.name},
                "contact": self.contact.as_dict(),
                "previous": self.previous.as_dict() if self.previous else None,
                "current": self.current.as_dict() if self.current else None,
                "detected_at": stamp,
            },
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.document())
