"""Words for humans: plurals and durations, shared by the CLI and the notifiers."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 page', '2 pages', '1 dead letter', '3 entries' (with plural_form)."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def duration(seconds: float) -> str:
    """'12 s', '4 min', '2 h 5 min', '3 d'."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{round(hours / 24)} d"


# Why a source's stored state was found lost (worker/detect/continuity.py), for logs and `status`.
STATE_LOSS_REASONS = {
    "vanished": "stored state vanished (Redis lost its data); re-baselining silently",
    "replaced": "stored state was lost and replaced; changes meanwhile were not seen",
    "rolled_back": "stored state is older than this worker last committed (Redis rolled back)",
}
