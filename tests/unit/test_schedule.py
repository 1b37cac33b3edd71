"""The daemon's schedule and readiness: pure parts, with time and randomness as parameters."""

from __future__ import annotations

import random

import pytest

from worker.app.jobs import next_due
from worker.ops.probes import Probes


@pytest.mark.parametrize(("interval", "spread"), [(60, 6), (300, 30), (3600, 30), (5, 0.5)])
def test_next_poll_is_one_interval_away_give_or_take_a_tenth_at_most_30_s(
    interval: float, spread: float
) -> None:
    rng = random.Random(7)
    dues = [next_due(now=1000.0, interval=interval, rng=rng) - 1000.0 for _ in range(2000)]
    assert interval - spread <= min(dues) < interval - spread * 0.9
    assert interval + spread * 0.9 < max(dues) <= interval + spread


def test_sources_started_together_spread_out() -> None:
    rng = random.Random(1)
    dues = sorted(next_due(now=0.0, interval=300, rng=rng) for _ in range(50))
    assert dues[-1] - dues[0] > 45  # not one burst every 300 s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_while_a_worker_runs_and_keeps_scheduling() -> None:
    clock = Clock()
    probes = Probes(stale_after_s=30, clock=clock)
    assert probes.ready() == (False, "worker not running")
    probes.worker_running = True
    assert probes.ready() == (False, "worker started, not scheduling yet")
    probes.scheduled()
    assert probes.ready() == (True, "ok")
    clock.now += 31
    assert probes.ready() == (False, "last scheduling tick 31 s ago")
    probes.scheduled()
    probes.worker_running = False  # e.g. Redis went away and the worker ended
    assert probes.ready() == (False, "worker not running")
