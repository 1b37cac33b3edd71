"""The absence rule of SPEC §5, pure: when a missing enrollment is removed.

An enrollment absent from ABSENCES consecutive complete listings is removed (a tombstone); a
suspect listing (it would remove more than half of the tracked enrollments and at least
MASS_REMOVAL_MIN, or it listed nothing) needs SUSPECT_ABSENCES, i.e. three listings that agree.
The store's sweep (worker/store/sweep.py) applies it to what the store holds; kept apart from
the sweep's reads and writes, and free of I/O, so the rule reads as SPEC states it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from worker.store.codec import Stored, state_text

ABSENCES = 2
SUSPECT_ABSENCES = 3
MASS_REMOVAL_MIN = 10


def suspect(absent: int, *, tracked: int, listed: int) -> bool:
    return absent > 0 and (listed == 0 or (absent * 2 > tracked and absent >= MASS_REMOVAL_MIN))


@dataclass(frozen=True, slots=True)
class Missed:
    stored: Stored  # what to store instead
    tombstone: bool  # removed now (kept so a re-enrollment starts a new life)
    change_key: str  # the removal event's id material, when it is one


def miss(stored: Stored, *, needed: int) -> Missed:
    """A complete listing did not return `stored`: one more miss, or a tombstone after
    `needed` consecutive ones."""
    missed = stored.missed + 1
    tombstone = missed >= needed
    after = replace(
        stored,
        rev=stored.rev + 1 if tombstone else stored.rev,
        missed=0 if tombstone else missed,
        gone=tombstone,
    )
    change_key = f"{stored.life}.{stored.rev + 1}|{state_text(stored.state)}|absent"
    return Missed(stored=after, tombstone=tombstone, change_key=change_key)
