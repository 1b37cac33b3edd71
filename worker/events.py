"""Event value, event types, the stable event id and the JSON document (SPEC §6).

Event ids: the design
=====================
Two promises (SPEC §6): the same observed change always has the same id, across retries,
restarts, crashes, replays and a Redis rollback to any earlier snapshot; a different change
never gets an id used before, even after Redis lost its data or was flushed.

An id is a hash of (source, enrollment id, event type, change key), and the change key is

    "<incarnation>|<life>.<rev>|<state before>|<state after>"

* `incarnation` names one stored history of the source: random (64 bits), written when the
  history starts (the first baseline, a reset, a baseline after data loss) and never changed
  while that history lives. A rollback restores a snapshot that holds the same incarnation, so
  re-detected changes hash the same; a data loss or FLUSHALL deletes it, the next baseline draws
  a new one, and nothing after the loss can hash like anything before it. (A snapshot taken
  before the first baseline holds no incarnation: rolled back to it, the source re-baselines
  silently, and a silent baseline emits no ids at all.)
* `life` counts this enrollment id's lives in this history: 0 when first stored; a removal
  (absence from two complete listings, or the provider's own removed status followed by a
  return) ends a life, and a re-enrollment starts life+1. An absence removal keeps a small
  tombstone (codec `g` mark) holding the life number, so the count never restarts. It depends
  only on the enrollment's own stored record, never on a source-wide counter: a rollback across
  an absence sweep re-derives the same life for every enrollment (the sweep moved no counter the
  others depend on), which is what the old source-wide "epoch" got wrong.
* `rev` counts the changes seen in this life; `before`/`after` are the encoded states. They are
  written in the same atomic commit as the state and the event itself (worker/store/batch.py), so
  any snapshot holds either the change with its event or neither: a re-poll from that snapshot sees
  the same record, computes the same (life, rev, before, after), and so the same id. The next
  change of the same life has rev+1, so pause / resume / pause again are three ids.
* Absence removals use "<rev+1>|<before>|absent", under the same rules.

What a rollback cannot tell apart: a change lost with the rollback and an identical change that
happened again after it (same before and after at the same rev). seqwatch treats them as one
change, as it must to keep the first promise. Health and other source notices use ids derived
from the source's health epoch, the incarnation, or fresh randomness (state loss), never reused.
"""

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
    STATE_LOST = "source.state_lost"
    REMOVALS_HELD = "source.removals_held"


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

    `change_key` identifies the observation (incarnation, the enrollment's life and revision,
    and the previous and current encoded states; see the module docstring), so replaying or
    re-committing one change never mints a second id.
    """
    digest = hashlib.blake2b(
        "\x1f".join((source, enrollment_id, event_type, change_key)).encode(),
        digest_size=16,
    ).hexdigest()
    return f"evt_{digest}"


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z, as in the SPEC example."""
    # isoformat truncates to the millisecond, as the SPEC's stamps do; it ends in +00:00 in UTC.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def notice_document(
    *,
    notice_type: HealthType,
    notice_id: str,
    source: str,
    provider: str,
    details: dict[str, Any],
    detected_at: datetime,
) -> dict[str, Any]:
    """The document of a `source.*` notice: a source's identity, its details, and when."""
    stamp = format_timestamp(detected_at)
    return {
        "type": notice_type.value,
        "timestamp": stamp,
        "data": {
            "id": notice_id,
            "source": source,
            "provider": provider,
            **details,
            "detected_at": stamp,
        },
    }


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
                "sequence": self.sequence.as_dict(),
                "contact": self.contact.as_dict(),
                "previous": self.previous.as_dict() if self.previous else None,
                "current": self.current.as_dict() if self.current else None,
                "detected_at": stamp,
            },
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.document())
