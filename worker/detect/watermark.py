"""Where an incremental listing starts: the newest `updated_at` a listing saw, stepped back."""

from __future__ import annotations

from datetime import datetime, timedelta

WATERMARK_MARGIN_S = 60.0


def next_watermark(
    *, previous: str | None, newest_seen: str | None, pages: int, listing_seconds: float
) -> str | None:
    """Where the next incremental listing starts (inclusive).

    A one-page listing saw a consistent snapshot: its newest `updated_at` is exact. A longer
    listing may have passed a record on an early page that changed afterwards while a later
    page showed something newer still; stepping back by the listing's own duration (a length
    of time, never our clock's reading) plus a margin lists such records again, and the diff
    makes the repeats silent.
    """
    if newest_seen is None or pages <= 1:
        return _later(previous, newest_seen)
    overlap = timedelta(seconds=listing_seconds + WATERMARK_MARGIN_S)
    stepped = datetime.fromisoformat(newest_seen) - overlap
    back = stepped.isoformat().replace("+00:00", "Z")
    return _later(previous, back)


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if datetime.fromisoformat(a) >= datetime.fromisoformat(b) else b


class Newest:
    """The newest `updated_at` seen so far (each one parsed once)."""

    def __init__(self) -> None:
        self.text: str | None = None
        self._moment: datetime | None = None

    def saw(self, updated_at: str) -> None:
        moment = datetime.fromisoformat(updated_at)
        if self._moment is None or moment > self._moment:
            self._moment, self.text = moment, updated_at
