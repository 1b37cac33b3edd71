"""Which enrollments one listing returned, for the absence sweep after it (worker/store/sweep.py).

Each id is kept as its hash and its buckets.hash_of, 12 bytes, appended a page at a time;
grouped by hash slot only if a sweep must look ids up.

The sweep first asks how many distinct ids were seen (a listing may repeat an id). Counting
them at the end costs a set of every id, or a pass in Python over all of them. So they are
counted as pages arrive, a run of pages at a time: ids that differ before their first ':'
differ, so while pages keep to one such prefix (Reply.io lists a sequence's enrollments,
`<sequence>:<contact>`, one sequence after another) their ids are counted in a set of that run
alone, dropped when the run ends. A page that mixes prefixes, a prefix met again after its run
ended, or a run too big to hold ends the counting in runs: the ids are then counted at the end.
"""

from __future__ import annotations

from array import array

from worker.store import buckets

# A slot maps to one bucket while the layout has at most 2**SLOT_BITS buckets (about 3M
# enrollments). Past that the sweep reads every bucket.
SLOT_BITS = 16
_SLOT_MASK = (1 << SLOT_BITS) - 1
# A run holds its ids (not copies) up to this many; a longer run ends the counting in runs.
_RUN_MAX = 1 << 16
# Distinct ids are counted up to this many at once (one set), more in _PARTS parts.
_AT_ONCE = 1 << 18
_PARTS = 16


class SeenIds:
    def __init__(self) -> None:
        self._hashes = array("q")
        self._crcs = array("I")
        self._total: int | None = None
        self._slots: dict[int, array[int]] | None = None  # slot -> hashes, when looked up
        # Counting in runs (the module docstring); `_in_runs` is False once it gave up.
        self._in_runs = True
        self._counted = 0  # distinct ids of the runs that ended
        self._prefix = ""  # of the current run, ':' included
        self._run: set[str] = set()  # the current run's ids
        self._ended: set[str] = set()  # prefixes of the runs that ended

    def add(self, enrollment_id: str) -> None:
        self.extend([enrollment_id], [buckets.hash_of(enrollment_id)])

    def extend(self, enrollment_ids: list[str], crcs: list[int]) -> None:
        """`add` for each id, given their buckets.hash_of (the store computes them anyway)."""
        self._hashes.extend(map(hash, enrollment_ids))
        self._crcs.extend(crcs)
        self._total = self._slots = None
        if self._in_runs and enrollment_ids:
            self._follow(enrollment_ids)

    def _follow(self, enrollment_ids: list[str]) -> None:
        prefix = enrollment_ids[0].partition(":")[0] + ":"
        # Every id lies between the least and the greatest: if both have the prefix, all do.
        if not (min(enrollment_ids).startswith(prefix) and max(enrollment_ids).startswith(prefix)):
            self._give_up()
            return
        if prefix != self._prefix:
            if prefix in self._ended:
                self._give_up()
                return
            if self._prefix:
                self._ended.add(self._prefix)
            self._counted += len(self._run)
            self._prefix, self._run = prefix, set()
        self._run.update(enrollment_ids)  # the ids themselves: their hashes are cached
        if len(self._run) > _RUN_MAX:
            self._give_up()

    def _give_up(self) -> None:
        self._in_runs = False
        self._run, self._ended = set(), set()

    def total(self) -> int:
        """Distinct enrollments seen."""
        if self._total is None:
            if self._in_runs:
                self._total = self._counted + len(self._run)
            elif len(self._hashes) <= _AT_ONCE:
                self._total = len(set(self._hashes))
            else:  # in parts, to bound memory
                parts: list[array[int]] = [array("q") for _ in range(_PARTS)]
                for hashed, crc in zip(self._hashes, self._crcs, strict=True):
                    parts[crc & _PARTS - 1].append(hashed)
                self._total = sum(len(set(part)) for part in parts)
        return self._total

    def _by_slot(self) -> dict[int, array[int]]:
        if self._slots is None:
            self._slots = {}
            for hashed, crc in zip(self._hashes, self._crcs, strict=True):
                hashes = self._slots.get(crc & _SLOT_MASK)
                if hashes is None:
                    hashes = self._slots[crc & _SLOT_MASK] = array("q")
                hashes.append(hashed)
        return self._slots

    def has(self, enrollment_id: str) -> bool:
        slot = buckets.hash_of(enrollment_id) & _SLOT_MASK
        return hash(enrollment_id) in self._by_slot().get(slot, ())

    def per_bucket(self, bucket_count: int) -> dict[int, int] | None:
        """Distinct ids seen per bucket of a layout; None when slots no longer pin buckets."""
        if bucket_count > 1 << SLOT_BITS:
            return None
        counts: dict[int, int] = {}
        for slot, hashes in self._by_slot().items():
            bucket = buckets.bucket_for(slot, bucket_count)
            counts[bucket] = counts.get(bucket, 0) + len(set(hashes))
        return counts
