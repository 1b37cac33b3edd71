"""Delivery policy: which destinations want an event, and when a failed delivery is retried."""

from __future__ import annotations

import random

import pytest

from worker.delivery.outbox import (
    MAX_RETRY_AFTER_S,
    RETRY_SCHEDULE,
    RETRY_WINDOW_S,
    Route,
    next_delay,
)
from worker.events import EventType

DAY_S = 24 * 3600


# ---------------------------------------------------------------- Route.wants


@pytest.mark.parametrize(
    ("events", "sources", "source", "event_type", "expected"),
    [
        (("*",), (), "reply-emea", "enrollment.replied", True),
        (("enrollment.*",), (), "unify-main", "enrollment.finished", True),
        (("enrollment.replied",), (), "reply-emea", "enrollment.replied", True),
        (("enrollment.replied",), (), "reply-emea", "enrollment.bounced", False),
        (("enrollment.replied", "enrollment.bounced"), (), "x", "enrollment.bounced", True),
        (("enrollment.step_*",), (), "x", "enrollment.step_advanced", True),
        (("enrollment.step_*",), (), "x", "enrollment.status_changed", False),
        ((), (), "reply-emea", "enrollment.replied", False),
        # sources filter: empty means every source
        (("*",), ("reply-emea",), "reply-emea", "enrollment.replied", True),
        (("*",), ("reply-emea",), "unify-main", "enrollment.replied", False),
        (("*",), ("reply-emea", "unify-main"), "unify-main", "enrollment.replied", True),
        (("*",), ("reply",), "reply-emea", "enrollment.replied", False),  # exact names only
        (("*",), ("reply-*",), "reply-emea", "enrollment.replied", False),  # no globs for sources
        # both filters must pass
        (("enrollment.finished",), ("reply-emea",), "reply-emea", "enrollment.replied", False),
        (("enrollment.finished",), ("reply-emea",), "unify-main", "enrollment.finished", False),
        (("enrollment.finished",), ("reply-emea",), "reply-emea", "enrollment.finished", True),
    ],
)
def test_route_wants(
    events: tuple[str, ...],
    sources: tuple[str, ...],
    source: str,
    event_type: str,
    expected: bool,
) -> None:
    route = Route(destination="d", events=events, sources=sources)
    assert route.wants(source=source, event_type=event_type) is expected


@pytest.mark.parametrize("event_type", [t.value for t in EventType])
def test_default_route_wants_every_enrollment_event_type(event_type: str) -> None:
    route = Route(destination="d", events=("*",), sources=())
    assert route.wants(source="any-source", event_type=event_type)


# ---------------------------------------------------------------- next_delay


class Extreme(random.Random):
    """Always draws one end of the jitter range."""

    def __init__(self, *, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize("attempts", range(1, 12))
def test_jitter_stays_within_20_percent(attempts: int) -> None:
    base = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    rng = random.Random(attempts)
    delays = [next_delay(attempts=attempts, retry_after=None, rng=rng) for _ in range(300)]
    assert all(0.8 * base <= d <= 1.2 * base for d in delays)
    # It really jitters: both sides of the base value are used.
    assert min(delays) < base < max(delays)
    assert min(delays) < 0.85 * base
    assert max(delays) > 1.15 * base


def test_jitter_is_reproducible_with_a_seed() -> None:
    one = [next_delay(attempts=n, retry_after=None, rng=random.Random(42)) for n in range(1, 9)]
    two = [next_delay(attempts=n, retry_after=None, rng=random.Random(42)) for n in range(1, 9)]
    assert one == two


def test_schedule_grows_and_then_repeats_its_last_step() -> None:
    low = Extreme(high=False)
    delays = [next_delay(attempts=n, retry_after=None, rng=low) for n in range(1, 15)]
    assert delays == sorted(delays)
    assert delays[0] <= 6  # the first retry is quick
    assert delays[-1] == delays[len(RETRY_SCHEDULE) - 1] == 0.8 * RETRY_SCHEDULE[-1]


@pytest.mark.parametrize("attempts", [1, 2, 5, 9])
def test_longer_retry_after_wins(attempts: int) -> None:
    high = Extreme(high=True)
    longest_jittered = 1.2 * RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    asked = longest_jittered + 123.0
    assert next_delay(attempts=attempts, retry_after=asked, rng=high) == asked


@pytest.mark.parametrize("attempts", [2, 4, 7])
def test_shorter_retry_after_does_not_shorten_backoff(attempts: int) -> None:
    rng = Extreme(high=False)
    expected = 0.8 * RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    assert next_delay(attempts=attempts, retry_after=1.0, rng=rng) == expected
    assert next_delay(attempts=attempts, retry_after=0.0, rng=rng) == expected


@pytest.mark.parametrize("retry_after", [DAY_S + 1, 7 * DAY_S, 10.0**9])
def test_retry_after_is_capped_at_24_hours(retry_after: float) -> None:
    assert MAX_RETRY_AFTER_S == DAY_S
    delay = next_delay(attempts=1, retry_after=retry_after, rng=random.Random(1))
    assert delay == DAY_S


def test_retry_after_of_exactly_24_hours_is_honoured() -> None:
    assert next_delay(attempts=3, retry_after=DAY_S, rng=random.Random(3)) == DAY_S


# ---------------------------------------------------------------- schedule + 24 h window


def dead_letter_time(rng: random.Random, *, retry_after: float | None = None) -> tuple[int, int]:
    """Replays worker/delivery/deliver.py's rule for an always-failing, retriable destination.

    Every attempt fails; it is dead-lettered only once RETRY_WINDOW_S have passed since the
    first failure, else rescheduled `next_delay` later. Returns (ms of burial, attempts).
    """
    now_ms, first_failure_ms, count = 0, 0, 0
    while count < 1000:
        count += 1
        if now_ms - first_failure_ms >= RETRY_WINDOW_S * 1000:
            return now_ms, count
        delay = next_delay(attempts=count, retry_after=retry_after, rng=rng)
        now_ms += int(delay * 1000)
    raise AssertionError("never dead-lettered")


@pytest.mark.parametrize(
    "rng",
    [Extreme(high=False), Extreme(high=True), *[random.Random(seed) for seed in range(20)]],
    ids=["min-jitter", "max-jitter", *[f"seed-{s}" for s in range(20)]],
)
def test_retries_last_at_least_24_hours_then_dead_letter(rng: random.Random) -> None:
    assert RETRY_WINDOW_S == DAY_S
    dead_ms, attempts = dead_letter_time(rng)
    assert dead_ms >= DAY_S * 1000  # never given up before 24 h
    # ...but not long after either: at most one (jittered) longest backoff past the window.
    assert dead_ms <= (DAY_S + 1.2 * max(RETRY_SCHEDULE)) * 1000
    assert len(RETRY_SCHEDULE) < attempts < 20


def test_schedule_covers_24_hours_even_at_minus_20_percent() -> None:
    """Summed retry delays at the lowest jitter reach the window before the budget ends."""
    low = Extreme(high=False)
    total, attempts = 0.0, 0
    while total < DAY_S:
        attempts += 1
        total += next_delay(attempts=attempts, retry_after=None, rng=low)
        assert attempts < 20, "the schedule cannot cover 24 h"
    dead_ms, dead_attempts = dead_letter_time(Extreme(high=False))
    assert dead_attempts == attempts + 1  # one more failed attempt, then the dead letter
    assert dead_ms >= total * 1000 - attempts  # int() truncation of each delay, in ms


def test_day_long_retry_after_still_gets_a_retry_before_dead_letter() -> None:
    dead_ms, attempts = dead_letter_time(random.Random(5), retry_after=10.0**9)
    assert attempts == 2
    assert dead_ms == DAY_S * 1000
