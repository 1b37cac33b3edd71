"""SeenIds counts the distinct ids a listing returned, at once or in parts, and answers `has`
and `per_bucket` as the sweep asks."""

from __future__ import annotations

import pytest

from worker.store import buckets, state
from worker.store.state import SeenIds


def _seen(ids: list[str]) -> SeenIds:
    seen = SeenIds()
    for start in range(0, len(ids), 7):  # pages of 7
        page = ids[start : start + 7]
        seen.extend(page, [buckets.hash_of(i) for i in page])
    return seen


@pytest.mark.parametrize("at_once", [1 << 18, 5], ids=["at-once", "in-parts"])
def test_total_counts_distinct_ids(monkeypatch: pytest.MonkeyPatch, at_once: int) -> None:
    monkeypatch.setattr(state, "_SEEN_AT_ONCE", at_once)
    ids = [f"5000:{n}" for n in range(100)]
    seen = _seen(ids + ids[:30])  # a listing that repeats 30 ids
    assert seen.total() == 100
    seen.add("5000:100")
    assert seen.total() == 101


def test_has_and_per_bucket_follow_what_was_added() -> None:
    ids = [f"5000:{n}" for n in range(100)]
    seen = _seen(ids + ids[:10])
    assert all(seen.has(i) for i in ids)
    assert not seen.has("5000:100")
    seen.add("5000:100")
    assert seen.has("5000:100")
    counts = seen.per_bucket(8)
    assert counts is not None
    assert sum(counts.values()) == 101
    for bucket, count in counts.items():
        members = {
            i for i in [*ids, "5000:100"] if buckets.bucket_for(buckets.hash_of(i), 8) == bucket
        }
        assert count == len(members)
