"""Seeded crash soak: `seqwatch run` SIGKILLed at random moments while the world changes.

A real daemon polls both fake providers (slow, so kills land inside polls) and delivers to a
slow signed receiver (so kills land between a POST and its ack); it is killed with SIGKILL at
random moments and restarted, again and again. At the end, with the world quiescent, a last
daemon settles everything and the checker holds the delivered stream to the script: every
change delivered at least once, exactly one distinct `data.id` per (change, event type), and no
event for a change that did not happen.

A second soak builds a delivery backlog (bursts of changes, a receiver that takes 0.4 s per
POST) so kills land while several deliveries are in flight at once (`concurrency`, default 8).

SEQWATCH_SOAK_ITERATIONS (default 12, about a minute) sets how many kills; SEQWATCH_SOAK_SEED
the seed. A failure names the seed and the kill log, so it can be replayed.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import wait_until
from tests.integration._daemon_proc import Daemon, Daemons
from tests.integration._soak_world import Report, SoakWorld
from worker.store import keys

ITERATIONS = int(os.environ.get("SEQWATCH_SOAK_ITERATIONS", "12"))
SEED = int(os.environ.get("SEQWATCH_SOAK_SEED", "20261123"))
SOURCES = ("reply", "unify")
DESTINATION = "hook"
LIFETIME = (0.3, 4.0)  # seconds a daemon lives before its SIGKILL (it needs ~1 s to start)
FAST_EXPIRY = 0.8  # share of kills after which the dead holder's leases are expired at once
SETTLE_TIMEOUT = 90.0
QUIET_PERIOD = 6.0  # more than a tick: time for a late duplicate to show up


@pytest.fixture
def world() -> Iterator[SoakWorld]:
    soak = SoakWorld(random.Random(SEED))
    soak.start()
    yield soak
    soak.stop()


@pytest.fixture
def backlogged_world() -> Iterator[SoakWorld]:
    """A slow receiver: bursts of changes queue up, and deliveries overlap."""
    soak = SoakWorld(random.Random(SEED + 1), receiver_delay=0.4)
    soak.start()
    yield soak
    soak.stop()


def held_locks(redis: Redis) -> list[str]:
    """What the killed daemon was doing: the leases and delivery locks it left behind."""
    found = [f"poll:{s}" for s in SOURCES if redis.exists(keys.lease(s))]
    found += [f"deliver:{s}" for s in SOURCES if redis.exists(keys.delivery_lock(s, DESTINATION))]
    return found


def expire_now(redis: Redis) -> None:
    """What the TTL does a few seconds later: the holder is dead (SIGKILL), nobody else runs."""
    for source in SOURCES:
        redis.delete(keys.lease(source), keys.delivery_lock(source, DESTINATION))


def baselines_done(redis: Redis) -> bool:
    return all(redis.hget(keys.meta(s), "baseline") == "1" for s in SOURCES)


def outbox_empty(redis: Redis) -> bool:
    return all(redis.zcard(keys.due(s, DESTINATION)) == 0 for s in SOURCES)


def live_for(world: SoakWorld, daemon: Daemon, seconds: float, *, mutate: bool, burst: int) -> None:
    """Let the daemon run `seconds`, changing the world meanwhile (up to `burst` at a time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        world.observe()
        if mutate and world.rng.random() < 0.5:
            for _ in range(world.rng.randint(1, burst)):
                world.mutate()
        time.sleep(min(0.15, max(0.0, deadline - time.monotonic())))
        assert daemon.running(), daemon.output[-3000:]


@dataclass(slots=True)
class Soaked:
    report: Report
    kills: Counter[str]
    log: list[str]
    summary: str


def soak(
    world: SoakWorld,
    tmp_path: Path,
    sync_redis: Redis,
    redis_url: str,
    *,
    burst: int,
    aim: bool = False,
) -> Soaked:
    """SIGKILL the daemon ITERATIONS times, settle with a last one, and check the stream."""
    started = time.monotonic()
    setup = world.setup(tmp_path, redis_url=redis_url)
    daemons = Daemons(setup, tmp_path)
    kills: Counter[str] = Counter()
    log: list[str] = []
    try:
        # Baselines first, so every kill below lands in a world that changes: on a busy
        # machine a daemon living 0.3-4 s may never finish one, and the soak would check nothing.
        warmup = daemons.spawn("warmup")
        assert wait_until(lambda: baselines_done(sync_redis), timeout=SETTLE_TIMEOUT, every=0.2), (
            warmup.output[-3000:]
        )
        warmup.kill()
        expire_now(sync_redis)
        for i in range(ITERATIONS):
            daemon = daemons.spawn()
            lifetime = world.rng.uniform(*LIFETIME)
            live_for(world, daemon, lifetime, mutate=baselines_done(sync_redis), burst=burst)
            if aim and baselines_done(sync_redis):
                # Wait (a little) for the moment several POSTs are in flight, and kill then.
                wait_until(lambda: world.hook.active > 1, timeout=3.0, every=0.01)
            in_flight = world.hook.active  # POSTs the receiver is serving as the kill lands
            daemon.kill()
            held = held_locks(sync_redis)
            kills.update(held or ["idle"])
            kills["total"] += 1
            if in_flight > 1:
                kills["with several POSTs in flight"] += 1
            log.append(
                f"{i}: killed after {lifetime:.2f}s holding {held or 'nothing'}, "
                f"{in_flight} POSTs in flight"
            )
            if world.rng.random() < FAST_EXPIRY:
                expire_now(sync_redis)

        # Quiescence: no more changes; one last daemon settles everything.
        last = daemons.spawn("settle")

        def settled() -> bool:
            world.observe()
            assert last.running(), last.output[-3000:]
            return baselines_done(sync_redis) and not world.pending and outbox_empty(sync_redis)

        if not wait_until(settled, timeout=SETTLE_TIMEOUT, every=0.2):
            report = world.check()
            pytest.fail(
                f"seed {SEED}: not settled; pending {sorted(world.pending)}\n"
                + "\n".join(report.violations + log)
            )
        time.sleep(QUIET_PERIOD)
        code, took = last.terminate()
        assert code == 0, last.output[-3000:]
        assert took < 10.0
        daemons.check_outputs()
    finally:
        daemons.close()

    report = world.check()
    summary = (
        f"crash soak seed={SEED}: {kills['total']} SIGKILLs ({dict(kills)}), "
        f"{report.changes} changes, {report.distinct_events} distinct events checked, "
        f"{report.deliveries} deliveries ({report.redelivered} redelivered), "
        f"{report.enrollments} enrollments, at most {world.hook.most_active} POSTs in flight, "
        f"{time.monotonic() - started:.1f}s; types {dict(report.by_type)}"
    )
    print(summary)
    assert not report.violations, f"seed {SEED}\n" + "\n".join(report.violations + log)
    assert report.changes > 0
    assert report.distinct_events >= report.changes
    return Soaked(report=report, kills=kills, log=log, summary=summary)


SOAK_TIMEOUT = 60 + ITERATIONS * (LIFETIME[1] + 6) + SETTLE_TIMEOUT + QUIET_PERIOD


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_sigkill_soak_delivers_every_change_under_one_id(
    tmp_path: Path, world: SoakWorld, sync_redis: Redis, redis_url: str
) -> None:
    soak(world, tmp_path, sync_redis, redis_url, burst=1)


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_sigkill_during_concurrent_delivery_loses_nothing_and_keeps_ids(
    tmp_path: Path, backlogged_world: SoakWorld, sync_redis: Redis, redis_url: str
) -> None:
    soaked = soak(backlogged_world, tmp_path, sync_redis, redis_url, burst=8, aim=True)
    # The point of this soak: deliveries really overlapped, and kills landed among them.
    assert backlogged_world.hook.most_active > 1, soaked.summary
    assert soaked.kills["with several POSTs in flight"] > 0, soaked.summary
