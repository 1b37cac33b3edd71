"""PollResult: what one poll did, counted as it goes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True, kw_only=True)
class PollResult:
    source: str
    pages: int = 0
    enrollments: int = 0
    events: int = 0
    deliveries: int = 0
    removed: int = 0
    baseline: bool = False
    full_listing: bool = True
    listed: int = 0  # records the listing returned, quarantined ones included
    quarantined: int = 0  # records this listing set aside (status counts those still bad)
    removals_held: int = 0  # absences not acted on: a suspect mass removal (SPEC §5)
    state_lost: str | None = None  # continuity.REASONS key when a loss was found before it
    event_ids: list[str] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
