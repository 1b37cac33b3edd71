"""Redis restarted under a running `seqwatch run` (AOF on): nothing committed is lost.

The world keeps changing while Redis is SIGKILLed or shut down at random moments (mid-poll,
mid-delivery) and brought back on the same port and data. The daemon must ride it out, and the
delivered stream must pass the soak checker: every change delivered, one id per change and type,
nothing invented. Both with an external server and with the embedded one, which the daemon
itself restarts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import wait_until
from tests.integration._daemon_proc import Daemon, Daemons
from tests.integration._redis_proc import RedisProcess
from tests.integration._soak_world import SoakWorld
from worker.store import keys

SOURCES = ("reply", "unify")
STARTUP_TIMEOUT = 30.0
SETTLE_TIMEOUT = 60.0
RESTARTS = 4


@pytest.fixture
def world() -> Iterator[SoakWorld]:
    soak = SoakWorld(random.Random(41), provider_delay=0.3, receiver_delay=0.1)
    soak.start()
    yield soak
    soak.stop()


def client_for(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, socket_timeout=5)


def settled(world: SoakWorld, url: Callable[[], str], daemon: Daemon) -> Callable[[], bool]:
    def check() -> bool:
        world.observe()
        assert daemon.running(), daemon.output[-3000:]
        try:
            with client_for(url()) as redis:
                due = sum(int(redis.zcard(keys.due(s, "hook"))) for s in SOURCES)
                done = all(redis.hget(keys.meta(s), "baseline") == "1" for s in SOURCES)
        except (OSError, ValueError):
            return False
        return done and due == 0 and not world.pending

    return check


def baselines_done(url: str) -> bool:
    try:
        with client_for(url) as redis:
            return all(redis.hget(keys.meta(s), "baseline") == "1" for s in SOURCES)
    except OSError:
        return False


def churn(world: SoakWorld, daemon: Daemon, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        world.observe()
        if world.rng.random() < 0.5:
            world.mutate()
        time.sleep(0.15)
    assert daemon.running(), daemon.output[-3000:]


def finish(world: SoakWorld, daemon: Daemon, url: Callable[[], str]) -> None:
    assert wait_until(settled(world, url, daemon), timeout=SETTLE_TIMEOUT, every=0.2), (
        sorted(world.pending),
        daemon.output[-3000:],
    )
    time.sleep(6.0)  # a tick more: a late duplicate would show now
    code, took = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert took < 10.0
    daemon.check_output()
    report = world.check()
    assert not report.violations, "\n".join(report.violations)
    assert report.changes > 0


def test_external_redis_killed_or_shut_down_mid_run_loses_nothing(
    tmp_path: Path, world: SoakWorld
) -> None:
    server = RedisProcess(tmp_path / "redis", appendfsync="always").start()
    daemons = Daemons(world.setup(tmp_path, redis_url=server.url), tmp_path)
    try:
        daemon = daemons.spawn("daemon")
        assert wait_until(lambda: baselines_done(server.url), timeout=STARTUP_TIMEOUT)
        for n in range(RESTARTS):
            churn(world, daemon, world.rng.uniform(1.0, 3.0))
            server.kill() if n % 2 == 0 else server.shutdown()
            churn(world, daemon, world.rng.uniform(0.3, 2.0))  # the world moves on meanwhile
            server.start()
        finish(world, daemon, lambda: server.url)
        # Each outage is logged once (a restart the daemon slept through shows up as its pooled
        # connections failing once), and each is followed by its recovery.
        outages = len(daemon.logged("redis_unavailable"))
        assert 1 <= outages <= RESTARTS
        assert len(daemon.logged("redis_available")) == outages
    finally:
        daemons.close()
        server.close()


def test_embedded_redis_killed_mid_run_is_restarted_and_loses_nothing(
    tmp_path: Path, world: SoakWorld
) -> None:
    data_dir = tmp_path / "data"
    daemons = Daemons(world.setup(tmp_path, redis_url=None), tmp_path)

    def recorded() -> dict[str, int]:
        state: dict[str, int] = json.loads((data_dir / "redis.json").read_text())
        return state

    def url() -> str:
        return f"redis://127.0.0.1:{recorded()['port']}/0"

    def restarted(old_pid: int) -> Callable[[], bool]:
        return lambda: recorded()["pid"] != old_pid

    try:
        daemon = daemons.spawn("daemon")
        assert wait_until(lambda: (data_dir / "redis.json").exists(), timeout=STARTUP_TIMEOUT)
        assert wait_until(lambda: baselines_done(url()), timeout=STARTUP_TIMEOUT)
        with client_for(url()) as redis:
            assert redis.config_get("appendfsync") == {"appendfsync": "always"}
        port = recorded()["port"]
        for _ in range(2):
            churn(world, daemon, world.rng.uniform(1.0, 3.0))
            pid = recorded()["pid"]
            os.kill(pid, signal.SIGKILL)  # the redis-server this test's daemon started
            # The daemon's supervisor starts it again, on the same port, from the same AOF.
            assert wait_until(restarted(pid), timeout=STARTUP_TIMEOUT)
            assert recorded()["port"] == port
        finish(world, daemon, url)
        assert not (data_dir / "redis.json").exists()  # stopped with the daemon
    finally:
        daemons.close()
        if (data_dir / "redis.json").exists():
            os.kill(recorded()["pid"], signal.SIGKILL)  # never leak the server on failure
