"""One readable line per event document, for Slack and the console.

Tolerant by design: a field that is missing or of the wrong type reads as unknown rather than
failing a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_FIELD = 200  # a 5 kB contact name must not swamp a line


def _text(value: Any) -> str | None:
    """A printable single-line string, or None when absent/empty."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = " ".join(str(value).split())  # folds newlines and control whitespace
    text = "".join(ch for ch in text if ch.isprintable())
    if not text:
        return None
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + "…"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _who(contact: Mapping[str, Any]) -> str:
    name, email, ident = (_text(contact.get(k)) for k in ("name", "email", "id"))
    if name:
        return name
    if email:
        return email
    return f"contact {ident}" if ident else "unknown contact"


def _which(sequence: Mapping[str, Any]) -> str:
    name, ident = _text(sequence.get("name")), _text(sequence.get("id"))
    if name:
        return name
    return f"sequence {ident}" if ident else "unknown sequence"


def _step(state: Mapping[str, Any]) -> int | None:
    step = state.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _what(event_type: str, previous: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    before, after = _text(previous.get("status")), _text(current.get("status"))
    match event_type:
        case "enrollment.enrolled":
            return "enrolled"
        case "enrollment.step_advanced":
            to_step, from_step = _step(current), _step(previous)
            if to_step is None:
                return "advanced a step"
            return f"advanced to step {to_step}" + (
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
        case _:
            return f"had event {_text(event_type) or 'unknown'}"


def describe(document: Mapping[str, Any]) -> str:
    """E.g. 'John Doe advanced to step 3 (from 2) in Q4 outbound [reply-emea]'."""
    data = _mapping(document.get("data"))
    event_type = document.get("type")
    what = _what(
        event_type if isinstance(event_type, str) else "",
        _mapping(data.get("previous")),
        _mapping(data.get("current")),
    )
    who = _who(_mapping(data.get("contact")))
    which = _which(_mapping(data.get("sequence")))
    source = _text(data.get("source")) or "unknown source"
    return f"{who} {what} in {which} [{source}]"
