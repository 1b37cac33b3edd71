"""`seqwatch run` notices Redis losing its data between polls, says so once, and never reuses
an event id afterwards (issue 9, cases 1 and 3), with two daemons sharing the Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._cli_helpers import Fakes, Setup, make_setup, wait_until
from tests.integration._daemon_proc import Daemons
from tests.integration._redis_proc import RedisProcess
from worker.demo.fakes.replyio import ContactStatus
from worker.store import keys

TIMEOUT = 30.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis").start()
    yield proc
    proc.close()


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, server: RedisProcess) -> Setup:
    base = make_setup(
        tmp_path, fakes, redis_url=server.url, poll_interval=1, sources=("reply",), slack=False
    )
    text = base.config.read_text().replace('events = ["*"]', 'events = ["*", "source.state_lost"]')
    return base.with_text(text)


@pytest.fixture
def daemons(setup: Setup, tmp_path: Path) -> Iterator[Daemons]:
    running = Daemons(setup, tmp_path)
    yield running
    running.close()


def delivered(fakes: Fakes) -> list[dict[str, object]]:
    return [json.loads(d.body) for d in fakes.hook.accepted]


def of_type(fakes: Fakes, event_type: str) -> list[dict[str, object]]:
    return [d for d in delivered(fakes) if d["type"] == event_type]


def test_a_flushed_redis_is_announced_once_and_ids_are_never_reused(
    fakes: Fakes, server: RedisProcess, daemons: Daemons
) -> None:
    redis = server.client()
    one, two = daemons.spawn(), daemons.spawn()
    assert wait_until(lambda: redis.hget(keys.meta("reply"), "baseline") == "1", timeout=TIMEOUT)
    fakes.reply.set_status(100, 2, ContactStatus.PAUSED)
    assert wait_until(lambda: bool(of_type(fakes, "enrollment.paused")), timeout=TIMEOUT)
    fakes.reply.set_status(100, 2, ContactStatus.ACTIVE)
    assert wait_until(lambda: bool(of_type(fakes, "enrollment.resumed")), timeout=TIMEOUT)
    before = {str(d["data"]["id"]) for d in delivered(fakes)}  # type: ignore[index]

    redis.flushall()
    assert wait_until(lambda: bool(of_type(fakes, "source.state_lost")), timeout=TIMEOUT)
    assert wait_until(lambda: redis.hget(keys.meta("reply"), "baseline") == "1", timeout=TIMEOUT)
    fakes.reply.set_status(100, 2, ContactStatus.PAUSED)  # paused again: a new change
    assert wait_until(lambda: len(of_type(fakes, "enrollment.paused")) == 2, timeout=TIMEOUT)

    [lost] = of_type(fakes, "source.state_lost")  # one notice, whichever daemon saw it first
    assert lost["data"]["reason"] == "vanished"  # type: ignore[index]
    logged = one.logged("source_state_lost") + two.logged("source_state_lost")
    assert [e["level"] for e in logged] == ["error"]
    after = [str(d["data"]["id"]) for d in delivered(fakes)]  # type: ignore[index]
    assert len(after) == len(set(after)), "an id was delivered twice"
    second_pause = of_type(fakes, "enrollment.paused")[1]
    assert second_pause["data"]["id"] not in before  # type: ignore[index]
    daemons.check_outputs()
    redis.close()
