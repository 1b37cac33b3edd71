"""Several `seqwatch run` processes on one Redis, some of them killed: leases, locks and jobs.

- A poller SIGKILLed mid-poll leaves its lease behind; the lease expires by its TTL and another
  daemon polls the source then, not before.
- Jobs a killed worker leaves "in progress" in arq's queue cannot starve the other workers.
- Three daemons, killed and replaced at random while the world changes: each source is polled by
  one of them at a time and every change is delivered under exactly one id.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest
from redis import Redis

from tests.integration._cli_helpers import Fakes, Seen, Setup, make_setup, wait_until
from tests.integration._daemon_proc import Daemon, Daemons
from tests.integration._soak_world import SoakWorld
from worker.app.jobs import QUEUE
from worker.detect.pipeline import LEASE_TTL_MS
from worker.store import keys

STARTUP_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 20.0
SOURCES = ("reply", "unify")
# Kills in the three-daemon run; the soak's variable makes it a long soak too.
KILLS = int(os.environ.get("SEQWATCH_SOAK_ITERATIONS", "6"))


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis) -> Setup:
    return make_setup(tmp_path, fakes, redis_url=redis_url, poll_interval=1, slack=False)


@pytest.fixture
def daemons(setup: Setup, tmp_path: Path) -> Iterator[Daemons]:
    group = Daemons(setup, tmp_path)
    yield group
    group.close()


def baselines_done(redis: Redis) -> bool:
    return all(redis.hget(keys.meta(s), "baseline") == "1" for s in SOURCES)


def polls(daemon: Daemon, source: str) -> list[tuple[float, float]]:
    """(start, end) wall times of the completed polls of `source` this daemon logged."""
    found = []
    for line in daemon.logged("poll"):
        if line.get("source") == source:
            end = datetime.fromisoformat(line["timestamp"]).timestamp()
            found.append((end - line["duration_ms"] / 1000, end))
    return found


def pollers(started: list[Daemon], source: str) -> set[str]:
    """The daemons that completed a poll of `source`."""
    return {daemon.name for daemon in started if polls(daemon, source)}


def test_a_poller_killed_mid_poll_holds_the_source_until_its_lease_expires(
    daemons: Daemons, fakes: Fakes, sync_redis: Redis
) -> None:
    first = daemons.spawn("first")
    assert wait_until(lambda: baselines_done(sync_redis), timeout=STARTUP_TIMEOUT), first.output
    # The next listing of sequence 100 hangs: the poll is stuck inside its lease.
    fakes.reply_faults.add("timeout", path_contains="/sequences/100/contacts", delay=60)
    assert wait_until(lambda: bool(fakes.reply_faults.fired), timeout=DELIVERY_TIMEOUT)
    first.kill()
    killed_at = time.time()
    left = cast(int, sync_redis.pttl(keys.lease("reply")))
    assert 0 < left <= LEASE_TTL_MS, left  # the dead holder's lease, bound to expire
    token = int(cast(str, sync_redis.get(keys.lease("reply"))))

    fakes.reply.advance_step(100, 1)
    fakes.unify_update("Omar Haddad", is_bounced=True)
    second = daemons.spawn("second")
    assert fakes.hook.wait_for(1, timeout=DELIVERY_TIMEOUT), second.output[-3000:]
    assert Seen.of(fakes.hook).kinds() == [("enrollment.bounced", fakes.unify_ids["Omar Haddad"])]
    assert fakes.hook.wait_for(2, timeout=LEASE_TTL_MS / 1000 + DELIVERY_TIMEOUT)
    expired_at = killed_at + left / 1000
    # The poll's own line follows its last commit; the delivery of that commit may come first.
    assert wait_until(lambda: bool(polls(second, "reply")), timeout=5), second.output[-3000:]
    taken = [start for start, _ in polls(second, "reply")]
    assert min(taken) >= expired_at - 0.5, "polled while the dead holder's lease still held"
    assert int(cast(str, sync_redis.get(keys.lease_counter("reply")))) > token
    assert Seen.of(fakes.hook).kinds() == sorted(
        [("enrollment.bounced", fakes.unify_ids["Omar Haddad"]),
         ("enrollment.step_advanced", "100:1")]
    )  # fmt: skip
    assert second.terminate()[0] == 0
    second.check_output()


def test_jobs_left_in_progress_by_killed_workers_do_not_starve_the_queue(
    daemons: Daemons, fakes: Fakes, sync_redis: Redis
) -> None:
    # What ~150 SIGKILLs leave behind: queued jobs marked "in progress" for job_timeout (1 h).
    # arq reads only the 100 oldest queued jobs, so without pruning it would never see new ones.
    now_ms = int(time.time() * 1000)
    for n in range(150):
        job_id = f"poll:reply:{n}"
        sync_redis.zadd(QUEUE, {job_id: now_ms - 600_000 + n})
        sync_redis.psetex(f"arq:in-progress:{job_id}", 3_600_000, "1")
    daemon = daemons.spawn("survivor")
    assert wait_until(lambda: baselines_done(sync_redis), timeout=STARTUP_TIMEOUT), daemon.output
    queued: list[str] = sync_redis.zrange(QUEUE, 0, -1)  # type: ignore[assignment]  # sync
    assert not set(queued) & {f"poll:reply:{n}" for n in range(150)}
    assert daemon.logged("stale_jobs_dropped")[0]["jobs"] >= 150
    assert daemon.terminate()[0] == 0
    daemon.check_output()


@pytest.mark.timeout(120 + KILLS * 6)
def test_three_daemons_killed_at_random_poll_one_at_a_time_and_deliver_once_per_change(
    tmp_path: Path, sync_redis: Redis, redis_url: str
) -> None:
    rng = random.Random(int(os.environ.get("SEQWATCH_SOAK_SEED", "7")))
    world = SoakWorld(rng, provider_delay=0.3, receiver_delay=0.1)
    world.start()
    group = Daemons(world.setup(tmp_path, redis_url=redis_url), tmp_path)
    try:
        pool = [group.spawn() for _ in range(3)]
        assert wait_until(lambda: baselines_done(sync_redis), timeout=STARTUP_TIMEOUT)
        for _ in range(KILLS):
            deadline = time.monotonic() + rng.uniform(1.0, 3.0)
            while time.monotonic() < deadline:
                world.observe()
                if rng.random() < 0.5:
                    world.mutate()
                time.sleep(0.15)
            victim = rng.choice(pool)
            victim.kill()  # leases expire by themselves here: other holders are alive
            pool = [d for d in pool if d is not victim] + [group.spawn()]
        # Random kills may spare a daemon that took every poll of a source (a loaded machine
        # polls less often): kill it too, so the hand-over below is always shown, never assumed.
        for source in SOURCES:
            only = pollers(group.started, source)
            for holder in [d for d in pool if only == {d.name}]:
                holder.kill()
                pool = [d for d in pool if d is not holder] + [group.spawn()]
            assert wait_until(
                lambda source=source: len(pollers(group.started, source)) >= 2,  # type: ignore[misc]
                timeout=LEASE_TTL_MS / 1000 + 30,
            ), source

        def settled() -> bool:
            world.observe()
            return not world.pending and not any(
                sync_redis.zcard(keys.due(s, "hook")) for s in SOURCES
            )

        assert wait_until(settled, timeout=LEASE_TTL_MS / 1000 + 45, every=0.2), sorted(
            world.pending
        )
        time.sleep(6.0)  # a tick more: any late double delivery shows now
        for daemon in pool:
            assert daemon.terminate()[0] == 0
        group.check_outputs()
        for source in SOURCES:
            assert_one_poll_at_a_time(group.started, source)
    finally:
        group.close()
        world.stop()
    report = world.check()
    print(
        f"three daemons: {KILLS} SIGKILLs, {report.changes} changes, "
        f"{report.distinct_events} distinct events, {report.deliveries} deliveries "
        f"({report.redelivered} redelivered)"
    )
    assert not report.violations, "\n".join(report.violations)
    assert report.changes > 0
    assert report.distinct_events >= report.changes


def assert_one_poll_at_a_time(started: list[Daemon], source: str) -> None:
    """Completed polls of one source by different daemons never overlap (the lease's job)."""
    spans: list[tuple[float, float, str]] = []
    for daemon in started:
        spans += [(start, end, daemon.name) for start, end in polls(daemon, source)]
    spans.sort()
    assert len({name for *_, name in spans}) >= 2, "only one daemon ever polled: nothing shown"
    for (_, end, who), (start, _, other) in itertools.pairwise(spans):
        # A poll logs a few ms after releasing its lease; the next may start in between.
        assert who == other or end - start < 0.25, f"{source}: {who} and {other} polled together"
