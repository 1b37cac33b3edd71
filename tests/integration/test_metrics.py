"""`seqwatch run` with `[metrics] listen`: a real HTTP scrape after a poll and a delivery.

Also the daemon's scheduling as an operator sees it: every source polled at start, a
per-worker health key that a stopping worker does not take from the others.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.integration._cli_helpers import (
    Fakes,
    Setup,
    config_text,
    make_setup,
    run,
    wait_until,
)
from tests.integration._daemon_proc import Daemon
from tests.integration._redis_proc import free_port
from worker.store import keys

TIMEOUT = 20.0
SPEC_METRICS = {
    "seqwatch_polls_total": {"source", "outcome"},
    "seqwatch_poll_duration_seconds": {"source"},
    "seqwatch_last_success_timestamp_seconds": {"source"},
    "seqwatch_enrollments_tracked": {"source"},
    "seqwatch_records_quarantined_total": {"source"},
    "seqwatch_provider_requests_total": {"source", "code"},
    "seqwatch_events_total": {"source", "type"},
    "seqwatch_deliveries_total": {"destination", "outcome"},
    "seqwatch_deliveries_pending": {"destination"},
    "seqwatch_dead_letters": {"destination"},
}
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback only
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        labels = frozenset(
            tuple(pair.split("=", 1))
            for pair in re.findall(r'(\w+="[^"]*")', match["labels"] or "")
        )
        labels = frozenset((k, v.strip('"')) for k, v in labels)
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis, port: int) -> Setup:
    base = make_setup(tmp_path, fakes, redis_url=redis_url, poll_interval=1)
    text = config_text(fakes, redis_url=redis_url, poll_interval=1)
    return base.with_text(text + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')


@pytest.fixture
def daemon(setup: Setup, tmp_path: Path) -> Iterator[Daemon]:
    started = Daemon(setup, tmp_path, "metrics").start()
    yield started
    started.close()


def test_metrics_after_a_poll_and_a_delivery_and_the_probes(
    daemon: Daemon, fakes: Fakes, sync_redis: Redis, port: int
) -> None:
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _answers(base + "/readyz") == 200, timeout=TIMEOUT), daemon.output
    assert get(base + "/healthz") == (200, "ok\n")
    assert wait_until(
        lambda: all(sync_redis.hget(keys.meta(s), "baseline") == "1" for s in ("reply", "unify")),
        timeout=TIMEOUT,
    ), daemon.output[-3000:]

    fakes.reply.advance_step(100, 1)
    assert fakes.hook.wait_for(1, timeout=TIMEOUT), daemon.output[-3000:]

    def delivered() -> bool:
        found = samples(get(base + "/metrics")[1])
        return (
            value(found, "seqwatch_deliveries_total", destination="hook", outcome="delivered") >= 1
        )

    assert wait_until(delivered, timeout=TIMEOUT), get(base + "/metrics")[1]
    status, text = get(base + "/metrics")
    assert status == 200
    found = samples(text)
    names = {name for name, _ in found}
    base_names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert base_names == set(SPEC_METRICS), sorted(base_names ^ set(SPEC_METRICS))
    for (name, labels), _ in found.items():
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert {k for k, _ in labels} - {"le"} == SPEC_METRICS[family], (name, labels)

    assert value(found, "seqwatch_polls_total", source="reply", outcome="ok") >= 2
    assert (
        value(found, "seqwatch_events_total", source="reply", type="enrollment.step_advanced") == 1
    )
    assert value(found, "seqwatch_enrollments_tracked", source="reply") == 5
    assert value(found, "seqwatch_enrollments_tracked", source="unify") == 5
    assert value(found, "seqwatch_provider_requests_total", source="reply", code="200") >= 2
    assert value(found, "seqwatch_poll_duration_seconds_count", source="unify") >= 1
    assert value(found, "seqwatch_deliveries_pending", destination="hook") == 0
    assert value(found, "seqwatch_dead_letters", destination="hook") == 0
    last_ok = value(found, "seqwatch_last_success_timestamp_seconds", source="reply")
    assert time.time() - 60 < last_ok <= time.time()

    assert get(base + "/nope")[0] == 404
    code, _ = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    daemon.check_output()


def _answers(url: str) -> int:
    try:
        return get(url)[0]
    except OSError:
        return 0


def test_each_source_is_polled_at_start_not_at_its_next_interval(
    tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis
) -> None:
    setup = make_setup(tmp_path, fakes, redis_url=redis_url, poll_interval=3600)
    # A previous run left the next poll an hour away; a starting worker polls anyway.
    sync_redis.hset(
        keys.schedule(), mapping={"reply": time.time() + 3600, "unify": time.time() + 3600}
    )
    daemon = Daemon(setup, tmp_path, "start").start()
    try:
        assert wait_until(
            lambda: all(
                sync_redis.hget(keys.meta(s), "baseline") == "1" for s in ("reply", "unify")
            ),
            timeout=TIMEOUT,
        ), daemon.output[-3000:]
        stored: dict[str, str] = sync_redis.hgetall(keys.schedule())  # type: ignore[assignment]
        due = {k: float(v) for k, v in stored.items()}
        for source in ("reply", "unify"):  # the next one, an hour on, give or take 30 s
            assert 3600 - 60 < due[source] - time.time() <= 3600 + 30, due
    finally:
        daemon.close()


def test_a_stopping_worker_leaves_the_other_workers_health_key(
    tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis
) -> None:
    setup = make_setup(tmp_path, fakes, redis_url=redis_url, poll_interval=1)
    first = Daemon(setup, tmp_path, "first").start()
    second = Daemon(setup, tmp_path, "second").start()
    try:
        pattern = keys.WORKER_HEALTH_PREFIX + "*"

        def health_keys() -> list[str]:
            found: list[str] = sync_redis.keys(pattern)  # type: ignore[assignment]
            return found

        assert wait_until(lambda: len(health_keys()) == 2, timeout=TIMEOUT), (
            first.output[-2000:], second.output[-2000:],
        )  # fmt: skip
        code, _ = first.terminate()
        assert code == 0
        remaining = health_keys()
        assert len(remaining) == 1, remaining
        assert str(second.pid) in remaining[0]
    finally:
        first.close()
        second.close()


def test_a_taken_metrics_port_is_one_line_and_exit_1(
    tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = config_text(fakes, redis_url=redis_url)
        setup = make_setup(tmp_path, fakes, redis_url=redis_url).with_text(
            text + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
        )
        result = run(setup, "run")
    assert result.code == 1, str(result)
    [line] = [x for x in result.stderr.splitlines() if x.startswith("seqwatch:")]
    assert line.startswith(f"seqwatch: metrics: cannot listen on 127.0.0.1:{port} (")
