"""End to end: `seqwatch run` (the arq daemon) as real subprocesses on fake provider APIs.

With poll_interval = 1 the daemon's tick (every 5 s) polls every source and delivers; a change
in a fake world should reach the signed receiver within a couple of ticks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from redis import Redis

from tests.integration._cli_helpers import (
    Fakes,
    Seen,
    Setup,
    assert_no_secrets,
    command,
    make_setup,
    wait_until,
)
from worker.app.jobs import TICK_SECONDS
from worker.store import keys

STARTUP_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
QUIET_PERIOD = 7.0  # longer than one tick: time for a duplicate to show up


class Daemon:
    """One `seqwatch run` process; its output goes to files (a full pipe would block it)."""

    def __init__(self, setup: Setup, log_dir: Path, name: str) -> None:
        self.setup = setup
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        self._files: list[IO[bytes]] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        out, err = self.stdout_path.open("wb"), self.stderr_path.open("wb")
        self._files = [out, err]
        self.process = subprocess.Popen(
            command(self.setup, "run"), env=self.setup.env, cwd=self.setup.cwd,
            stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return self

    @property
    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit status, seconds it took to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=STOP_TIMEOUT)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # only the process this test started, by its handle
            self.process.wait(timeout=5)
        for file in self._files:
            file.close()

    def check_output(self) -> None:
        text = self.output
        assert "Traceback" not in text, text[-3000:]
        assert_no_secrets(text, self.setup.secrets, where="the daemon's output")


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis) -> Setup:
    return make_setup(tmp_path, fakes, redis_url=redis_url, poll_interval=1)


class Daemons:
    """The daemons one test started; each is killed at teardown if still running."""

    def __init__(self, setup: Setup, log_dir: Path) -> None:
        self._setup = setup
        self._log_dir = log_dir
        self._started: list[Daemon] = []

    def spawn(self, name: str) -> Daemon:
        daemon = Daemon(self._setup, self._log_dir, name)
        self._started.append(daemon)
        return daemon.start()

    def close(self) -> None:
        for daemon in self._started:
            daemon.close()


@pytest.fixture
def daemons(setup: Setup, tmp_path: Path) -> Iterator[Daemons]:
    group = Daemons(setup, tmp_path)
    try:
        yield group
    finally:
        group.close()


def wait_for_baselines(redis: Redis, daemons: list[Daemon]) -> None:
    def done() -> bool:
        assert all(d.running() for d in daemons), [d.output[-2000:] for d in daemons]
        return all(redis.hget(keys.meta(s), "baseline") == "1" for s in ("reply", "unify"))

    assert wait_until(done, timeout=STARTUP_TIMEOUT), [d.output[-2000:] for d in daemons]


def wait_for_mid_tick() -> None:
    """Sleep past the next tick (every source polled on it), to halfway to the one after."""
    now = time.time()
    next_tick = (now // TICK_SECONDS + 1) * TICK_SECONDS
    time.sleep(next_tick + TICK_SECONDS / 2 - now)


def test_run_polls_on_schedule_delivers_changes_and_stops_on_sigterm(
    daemons: Daemons, fakes: Fakes, sync_redis: Redis
) -> None:
    daemon = daemons.spawn("solo")
    wait_for_baselines(sync_redis, [daemon])
    time.sleep(0.5)  # a delivery round right after the baseline would show a leak here
    assert fakes.hook.deliveries == [], "the baseline was not silent"
    assert fakes.slack.deliveries == []

    fakes.reply.advance_step(100, 1)
    fakes.unify_update("Maya Lopez", is_replied=True)
    assert fakes.hook.wait_for(2, timeout=DELIVERY_TIMEOUT), daemon.output[-3000:]
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted(
        [("enrollment.replied", fakes.unify_ids["Maya Lopez"]),
         ("enrollment.step_advanced", "100:1")]
    )  # fmt: skip
    assert seen.one("enrollment.step_advanced", "100:1")["current"]["step"] == 2

    code, took = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert took < 5.0, f"SIGTERM took {took:.1f} s"
    assert "worker_stopped" in daemon.output
    daemon.check_output()


def test_two_daemons_on_one_redis_deliver_each_change_exactly_once(
    daemons: Daemons, fakes: Fakes, sync_redis: Redis
) -> None:
    first, second = daemons.spawn("first"), daemons.spawn("second")
    assert wait_until(
        lambda: all("worker_started" in d.output for d in (first, second)),
        timeout=STARTUP_TIMEOUT,
    ), [d.output[-2000:] for d in (first, second)]
    wait_for_baselines(sync_redis, [first, second])
    assert fakes.hook.deliveries == []
    # The burst must land between two ticks: right after start-up each daemon polls at once, so a
    # change made then can reach one source's poll in this tick and the other's in the next.
    wait_for_mid_tick()

    for contact in (1, 2, 3):  # with Unify's change, one burst: one Slack digest for both
        fakes.reply.advance_step(100, contact)
    fakes.unify_update("Omar Haddad", is_bounced=True)
    assert fakes.hook.wait_for(4, timeout=DELIVERY_TIMEOUT), [
        d.output[-2000:] for d in (first, second)
    ]
    # Slack waits for the burst to settle (jobs.DIGEST_SETTLE_S), then the next tick sends it.
    assert fakes.slack.wait_for(1, timeout=DELIVERY_TIMEOUT), [
        d.output[-2000:] for d in (first, second)
    ]
    time.sleep(QUIET_PERIOD)  # both workers tick again: any double poll or send shows now

    ids = [d.webhook_id for d in fakes.hook.deliveries]
    assert len(ids) == len(set(ids)) == 4, f"webhook deliveries: {ids}"
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted(
        [("enrollment.step_advanced", f"100:{n}") for n in (1, 2, 3)]
        + [("enrollment.bounced", fakes.unify_ids["Omar Haddad"])]
    )
    assert len(fakes.slack.deliveries) == 1, [d.body for d in fakes.slack.deliveries]
    [message] = [json.loads(d.body) for d in fakes.slack.deliveries]
    assert len(message["blocks"]) == 4  # one section per event, both sources in one message

    for daemon in (first, second):
        code, took = daemon.terminate()
        assert code == 0, daemon.output[-3000:]
        assert took < 5.0, f"SIGTERM took {took:.1f} s"
        daemon.check_output()
