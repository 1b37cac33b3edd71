"""The absence sweep after a complete listing (SPEC §5), run by the store.

The rule (how many misses remove an enrollment, what makes a listing suspect) is
worker/store/absence.py's; here it is applied to what the store holds. Enrollments of sequences
the source chose not to list this poll are not absent. The sweep adds its writes to the caller's
batch and hands back what was removed, for the caller to announce.

Those skipped sequences (Reply.io's archived ones, between full syncs) would make every sweep
read buckets, only to pass over the same enrollments. So a sweep that reads remembers how many
of the unseen were skipped ones, with the skipped set and the tombstone count: while both are
unchanged, those enrollments cannot have changed (they are not listed, and only a sweep
tombstones), so a listing that misses exactly that many missed nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worker.enrollment import Status
from worker.store.absence import ABSENCES, SUSPECT_ABSENCES, miss, suspect
from worker.store.batch import Batch
from worker.store.codec import Stored

if TYPE_CHECKING:
    from worker.store.seen import SeenIds
    from worker.store.state import StateStore

# Meta field: what the last absence sweep learnt of skipped sequences.
SWEEP_MEMO = "sweep_skipped"


@dataclass(frozen=True, slots=True)
class Removal:
    """An enrollment removed by absence now, to be announced."""

    enrollment_id: str
    stored: Stored
    change_key: str


@dataclass(slots=True)
class Swept:
    tracked: int  # before the sweep
    absent: int  # candidates counted (exactly when the listing may be suspect)
    gone: int = 0  # tombstoned now
    held: bool = False  # a suspect mass removal: nothing removed, recorded instead
    removals: list[Removal] = field(default_factory=list)


def memo(skipped: Collection[str], *, unseen: int, tombstones: int) -> str:
    digest = hashlib.blake2b("\n".join(sorted(skipped)).encode(), digest_size=8).hexdigest()
    return f"{digest}:{unseen}:{tombstones}"


@dataclass(slots=True)
class _Passed:
    """Unseen enrollments of skipped sequences, counted as the sweep passes over them."""

    count: int = 0


async def _absent(
    store: StateStore, seen: SeenIds, skipped: Collection[str], passed: _Passed
) -> AsyncIterator[tuple[str, Stored]]:
    async for enrollment_id, stored in store.unseen(seen):
        if stored.sequence_id not in skipped:
            yield enrollment_id, stored
        else:
            passed.count += 1


async def sweep(
    store: StateStore, batch: Batch, seen: SeenIds, *, skipped: Collection[str], listed: int
) -> Swept:
    """Adds the sweep's writes to `batch`; the caller announces `removals`."""
    tracked = await store.tracked()
    # The counts settle the usual case; only a listing that may be suspect pays for an exact
    # count of the candidates first (a second read of the buckets holding them).
    absent = max(0, tracked - seen.total())
    if (
        skipped
        and absent
        and not store.upgrading
        and store.sweep_memo == memo(skipped, unseen=absent, tombstones=store.tombstones)
    ):
        return Swept(tracked=tracked, absent=0)  # only the skipped ones, as last time
    if suspect(absent, tracked=tracked, listed=listed):
        absent = 0
        async for _ in _absent(store, seen, skipped, _Passed()):
            absent += 1
    swept = Swept(tracked=tracked, absent=absent)
    is_suspect = suspect(absent, tracked=tracked, listed=listed)
    needed = SUSPECT_ABSENCES if is_suspect else ABSENCES
    passed = _Passed()
    async for enrollment_id, stored in _absent(store, seen, skipped, passed):
        missed = miss(stored, needed=needed)
        store.keep(batch, enrollment_id, missed.stored)
        if not missed.tombstone:
            continue
        swept.gone += 1
        if stored.state.status is not Status.REMOVED:  # else reported when the provider said so
            swept.removals.append(Removal(enrollment_id, stored, missed.change_key))
    store.count(batch, "tracked", -swept.gone)
    store.count(batch, "tombstones", swept.gone)
    if skipped:  # read after the counts: the tombstones as this commit leaves them
        store.set_meta(
            batch, SWEEP_MEMO, memo(skipped, unseen=passed.count, tombstones=store.tombstones)
        )
    swept.held = is_suspect and not swept.gone
    return swept
