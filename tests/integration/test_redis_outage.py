"""Redis goes away under a real `seqwatch run` (and under `seqwatch poll`), then comes back.

The Redis is a redis-server this test owns, stopped and restarted on the same port. The daemon
must stay up, log the outage once (error) and the recovery once, back off instead of hammering,
pick the work up again, and still stop promptly on SIGTERM while Redis is down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import (
    Fakes,
    Seen,
    Setup,
    make_setup,
    run,
    stderr_lines,
    wait_until,
)
from tests.integration._daemon_proc import Daemons
from tests.integration._redis_proc import RedisProcess
from worker.app.daemon import Backoff
from worker.store import keys

STARTUP_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 30.0
OUTAGE_S = 6.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis")
    yield proc
    proc.close()


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, server: RedisProcess) -> Setup:
    return make_setup(tmp_path, fakes, redis_url=server.url, poll_interval=1, slack=False)


@pytest.fixture
def daemons(setup: Setup, tmp_path: Path) -> Iterator[Daemons]:
    group = Daemons(setup, tmp_path)
    yield group
    group.close()


def baselines_done(server: RedisProcess) -> bool:
    try:
        with server.client() as client:
            return all(client.hget(keys.meta(s), "baseline") == "1" for s in ("reply", "unify"))
    except OSError:
        return False


def test_backoff_is_exponential_and_bounded() -> None:
    backoff = Backoff(first=0.5, factor=2.0, cap=30.0)
    delays = [backoff.delay(n) for n in range(1, 10)]
    assert delays[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[6:] == [30.0, 30.0, 30.0]


def test_daemon_rides_out_redis_outages_and_stops_promptly_during_one(
    daemons: Daemons, fakes: Fakes, server: RedisProcess
) -> None:
    server.start()
    daemon = daemons.spawn("daemon")
    assert wait_until(lambda: baselines_done(server), timeout=STARTUP_TIMEOUT), daemon.output

    server.shutdown()  # a clean stop: the AOF is complete
    fakes.reply.advance_step(100, 1)  # changes while Redis is away
    fakes.unify_update("Maya Lopez", is_replied=True)
    time.sleep(OUTAGE_S)
    assert daemon.running(), daemon.output[-3000:]
    down = daemon.logged("redis_unavailable")
    assert len(down) == 1, down  # once per outage, not once per attempt
    assert down[0]["level"] == "error"

    server.start()
    assert fakes.hook.wait_for(2, timeout=DELIVERY_TIMEOUT), daemon.output[-3000:]
    back = daemon.logged("redis_available")
    assert len(back) == 1, back
    assert back[0]["attempts"] <= 6  # 0.5+1+2+4 s of backoff covers a 6 s outage: no hammering
    seen = Seen.of(fakes.hook)
    assert seen.kinds() == sorted(
        [("enrollment.step_advanced", "100:1"),
         ("enrollment.replied", fakes.unify_ids["Maya Lopez"])]
    )  # fmt: skip

    server.kill()  # the second outage: SIGKILL this time
    assert wait_until(lambda: len(daemon.logged("redis_unavailable")) == 2, timeout=10)
    code, took = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert took < 3.0, f"SIGTERM during an outage took {took:.1f} s"
    assert "worker_stopped" in daemon.output
    daemon.check_output()


def test_daemon_started_before_redis_waits_for_it(
    daemons: Daemons, fakes: Fakes, server: RedisProcess
) -> None:
    daemon = daemons.spawn("early")
    assert wait_until(lambda: bool(daemon.logged("redis_unavailable")), timeout=STARTUP_TIMEOUT)
    assert daemon.running(), daemon.output[-3000:]
    server.start()
    assert wait_until(lambda: baselines_done(server), timeout=STARTUP_TIMEOUT), daemon.output
    fakes.reply.advance_step(200, 4)
    assert fakes.hook.wait_for(1, timeout=DELIVERY_TIMEOUT), daemon.output[-3000:]
    assert len(daemon.logged("redis_unavailable")) == 1
    assert len(daemon.logged("redis_available")) == 1
    code, _ = daemon.terminate()
    assert code == 0
    daemon.check_output()


def test_poll_without_redis_exits_1_with_one_clear_line(setup: Setup, server: RedisProcess) -> None:
    result = run(setup, "poll")  # nothing listens on the server's port
    assert result.code == 1, str(result)
    assert stderr_lines(result) == [
        f"seqwatch: redis unavailable at 127.0.0.1:{server.port} (ConnectionError)"
    ]
    server.start()
    assert run(setup, "poll").code == 0  # and the same command works once Redis is there


def test_status_without_redis_exits_1_with_the_same_line(
    setup: Setup, server: RedisProcess
) -> None:
    result = run(setup, "status")  # read through worker.store.redis_lite, not redis-py
    assert result.code == 1, str(result)
    assert stderr_lines(result) == [
        f"seqwatch: redis unavailable at 127.0.0.1:{server.port} (ConnectionError)"
    ]
    server.start()
    assert run(setup, "status").code == 0


def test_redis_kill_or_shutdown_keeps_every_acknowledged_write(
    daemons: Daemons, fakes: Fakes, server: RedisProcess
) -> None:
    """SIGKILL loses nothing Redis acknowledged (appendfsync always, as the embedded server)."""
    server.start()
    daemon = daemons.spawn("daemon")
    assert wait_until(lambda: baselines_done(server), timeout=STARTUP_TIMEOUT), daemon.output
    fakes.reply.advance_step(100, 2)
    assert fakes.hook.wait_for(1, timeout=DELIVERY_TIMEOUT)
    assert wait_until(lambda: acked(server), timeout=DELIVERY_TIMEOUT)  # not just received
    for how in ("kill", "shutdown"):
        daemon.pause()  # SIGSTOP: nothing writes while we take the snapshot
        try:
            with server.client() as client:
                before = snapshot(client)
            server.kill() if how == "kill" else server.shutdown()
            server.start()
            with server.client() as client:
                after = snapshot(client)
        finally:
            daemon.resume()
        assert after == before, f"writes lost across a redis {how}"
        assert any(k.startswith(keys.state_pattern("reply").rstrip("*")) for k in before)
    fakes.reply.advance_step(100, 3)
    assert fakes.hook.wait_for(2, timeout=DELIVERY_TIMEOUT), daemon.output[-3000:]
    assert wait_until(lambda: acked(server), timeout=DELIVERY_TIMEOUT)
    ids = fakes.hook.received_ids()
    assert len(ids) == len(set(ids)) == 2, ids  # the ack survived too: nothing sent again
    code, _ = daemon.terminate()
    assert code == 0
    daemon.check_output()


def acked(server: RedisProcess) -> bool:
    with server.client() as client:
        return not any(client.zcard(keys.due(s, "hook")) for s in ("reply", "unify"))


def snapshot(client: Redis) -> dict[str, object]:
    """Every lasting key's logical value (not DUMP bytes: an AOF reload may re-encode a hash).
    Keys with a TTL (leases, arq's bookkeeping) may expire between the two looks: left out."""
    found: dict[str, object] = {}
    for key in client.scan_iter("*"):
        if client.pttl(key) != -1:
            continue
        kind = client.type(key)
        if kind == "string":
            found[key] = client.get(key)
        elif kind == "hash":  # as bytes: state field names are packed ids (worker.store.buckets)
            found[key] = client.execute_command("HGETALL", key, NEVER_DECODE=True)  # type: ignore[no-untyped-call]
        elif kind == "zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            found[key] = sorted(client.smembers(key))  # type: ignore[arg-type]
        elif kind == "list":
            found[key] = client.lrange(key, 0, -1)
    return found
