"""SeenIds counts the distinct ids a listing returned (as pages arrive, a run of one id prefix at
a time, or at the end, at once or in parts) and answers `has` and `per_bucket` as the sweep asks."""

from __future__ import annotations

import random

import pytest

from worker.store import buckets
from worker.store import seen as seen_module
from worker.store.seen import SeenIds


def _seen(ids: list[str], *, page: int = 7) -> SeenIds:
    seen = SeenIds()
    for start in range(0, len(ids), page):
        chunk = ids[start : start + page]
        seen.extend(chunk, [buckets.hash_of(i) for i in chunk])
    return seen


def _sequence(sequence: int, contacts: range) -> list[str]:
    return [f"{sequence}:{n}" for n in contacts]


# Listings as providers page them; each repeats ids somewhere, as offset paging can.
LISTINGS = {
    # One sequence after another, a repeat inside a run and across its pages.
    "runs": _sequence(5000, range(100))
    + _sequence(5000, range(90, 120))
    + _sequence(77, range(50)),
    # A sequence listed again after another one: its repeats are in a run that already ended.
    "prefix-again": _sequence(5000, range(60))
    + _sequence(6, range(20))
    + _sequence(5000, range(30)),
    # Pages that mix prefixes (and ids with no ':' at all).
    "mixed": [f"{n % 3}:{n}" for n in range(80)] + [str(n) for n in range(40)] + ["1:1", "7"],
    # Sequence ids that are prefixes of one another: "5" and "50" must not be one run.
    "near-prefixes": _sequence(5, range(40)) + _sequence(50, range(40)) + _sequence(5, range(10)),
    # UUID pairs (Unify's ids) share no prefix across sequences either.
    "uuid-pairs": [f"{s:08x}-0000-4000-8000-000000000000:{n}" for s in (1, 2) for n in range(30)]
    * 2,
}


@pytest.mark.parametrize("at_once", [1 << 18, 5], ids=["at-once", "in-parts"])
@pytest.mark.parametrize("name", sorted(LISTINGS))
@pytest.mark.parametrize("page", [1, 7, 1000])
def test_total_counts_distinct_ids(
    monkeypatch: pytest.MonkeyPatch, at_once: int, name: str, page: int
) -> None:
    monkeypatch.setattr(seen_module, "_AT_ONCE", at_once)
    monkeypatch.setattr(seen_module, "_RUN_MAX", at_once)  # a longer run gives up counting
    ids = LISTINGS[name]
    seen = _seen(ids, page=page)
    assert seen.total() == len(set(ids))
    seen.add("5000:100000")
    assert seen.total() == len(set(ids)) + 1
    seen.add(ids[0])  # a repeat after the count: still counted once
    assert seen.total() == len(set(ids)) + 1


def test_total_of_a_shuffled_listing_is_exact() -> None:
    rng = random.Random(3)
    ids = [f"{rng.randrange(20)}:{rng.randrange(300)}" for _ in range(3000)]
    for page in (1, 10, 100):
        assert _seen(ids, page=page).total() == len(set(ids))


def test_a_page_of_two_prefixes_is_not_counted_in_the_run_of_its_first() -> None:
    seen = SeenIds()
    for page in (["1:1", "2:1", "1:2"], ["2:1", "2:2"]):
        seen.extend(page, [buckets.hash_of(i) for i in page])
    assert seen.total() == 4


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
