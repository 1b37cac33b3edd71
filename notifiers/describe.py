"""What an event document says, for people: the facts (for Slack) and one line (console).

Tolerant by design: a field that is missing or of the wrong type reads as unknown rather than
failing a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.wording import plural

_MAX_FIELD = 200  # a 5 kB contact name must not swamp a line
_MAX_ERROR = 500


def text(value: Any, limit: int = _MAX_FIELD) -> str | None:
    """A printable single-line string, or None when absent/empty."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    folded = " ".join(str(value).split())  # folds newlines and control whitespace
    folded = "".join(ch for ch in folded if ch.isprintable())
    if not folded:
        return None
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and number > 0 else None


def step_of(step: int, total: int | None) -> str:
    """'2 of 5' where the sequence's step count is known (and consistent), else '2'."""
    return f"{step} of {total}" if total is not None and 0 < step <= total else str(step)


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """The human-relevant parts of one event document, each None when unknown."""

    event_type: str
    kind: str  # "enrollment", "health", "test" or "other"
    source: str | None
    what: str  # "advanced to step 3 (from 2)", "is failing", ...
    contact_id: str | None = None
    contact_name: str | None = None
    email: str | None = None
    company: str | None = None
    sequence_id: str | None = None
    sequence_name: str | None = None
    enrollment_id: str | None = None
    step: int | None = None
    previous_step: int | None = None
    steps_total: int | None = None  # the sequence's step count, where the provider says
    error: str | None = None
    failures: int | None = None
    destination: str | None = None
    detected_at: datetime | None = None

    @property
    def who(self) -> str:
        if self.contact_name or self.email:
            return self.contact_name or self.email or ""
        return f"contact {self.contact_id}" if self.contact_id else "unknown contact"

    @property
    def sequence(self) -> str:
        if self.sequence_name:
            return self.sequence_name
        return f"sequence {self.sequence_id}" if self.sequence_id else "unknown sequence"


def _what(
    event_type: str,
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    steps_total: int | None = None,
) -> str:
    before, after = text(previous.get("status")), text(current.get("status"))
    match event_type:
        case "enrollment.enrolled":
            return "enrolled"
        case "enrollment.step_advanced":
            to_step, from_step = _int(current.get("step")), _int(previous.get("step"))
            if to_step is None:
                return "advanced a step"
            return f"advanced to step {step_of(to_step, steps_total)}" + (
                f" (from {from_step})" if from_step is not None else ""
            )
        case "enrollment.replied":
            return "replied"
        case "enrollment.bounced":
            return "bounced"
        case "enrollment.opted_out":
            return "opted out"
        case "enrollment.paused":
            return "was blocked" if after == "blocked" else "was paused"
        case "enrollment.resumed":
            return "resumed"
        case "enrollment.finished":
            return "finished"
        case "enrollment.removed":
            return "was removed" if current else "was removed (no longer listed)"
        case "enrollment.status_changed":
            return f"status changed {before or '?'} -> {after or '?'}"
        case "source.failing":
            return "is failing"
        case "source.recovered":
            return "recovered"
        case "seqwatch.test":
            return "test event"
        case _:
            return f"had event {text(event_type) or 'unknown'}"


def _moment(value: Any) -> datetime | None:
    raw = text(value, 64)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def facts(document: Mapping[str, Any]) -> Facts:
    data = _mapping(document.get("data"))
    raw_type = document.get("type")
    event_type = raw_type if isinstance(raw_type, str) else ""
    previous, current = _mapping(data.get("previous")), _mapping(data.get("current"))
    contact, sequence = _mapping(data.get("contact")), _mapping(data.get("sequence"))
    if event_type.startswith("enrollment."):
        kind = "enrollment"
    elif event_type.startswith("source."):
        kind = "health"
    elif event_type == "seqwatch.test":
        kind = "test"
    else:
        kind = "other"
    steps_total = _positive(sequence.get("steps_total"))
    return Facts(
        event_type=text(event_type, 100) or "unknown",
        kind=kind,
        source=text(data.get("source")),
        what=_what(event_type, previous, current, steps_total),
        contact_id=text(contact.get("id")),
        contact_name=text(contact.get("name")),
        email=text(contact.get("email")),
        company=text(contact.get("company")),
        sequence_id=text(sequence.get("id")),
        sequence_name=text(sequence.get("name")),
        enrollment_id=text(data.get("enrollment_id")),
        step=_int(current.get("step")),
        previous_step=_int(previous.get("step")),
        steps_total=steps_total,
        error=text(data.get("error"), _MAX_ERROR),
        failures=_int(data.get("consecutive_failures")),
        destination=text(data.get("destination")),
        detected_at=_moment(data.get("detected_at")),
    )


def describe(document: Mapping[str, Any], *, label: str | None = None) -> str:
    """E.g. 'John Doe advanced to step 3 of 5 (from 2) in Q4 outbound [reply-emea]'.

    `label` is the source's display name, shown instead of its slug when configured.
    """
    f = facts(document)
    source = label or f.source or "unknown source"
    match f.kind:
        case "health" if f.event_type == "source.failing":
            line = f"source {source} is failing"
            if f.failures is not None:
                line += f" after {plural(f.failures, 'failed poll')} in a row"
            return line + (f": {f.error}" if f.error else "")
        case "health":
            return f"source {source} {f.what}" + (f": {f.error}" if f.error else "")
        case "test":
            return f"test event for destination {f.destination or 'unknown'}"
    return f"{f.who} {f.what} in {f.sequence} [{source}]"
