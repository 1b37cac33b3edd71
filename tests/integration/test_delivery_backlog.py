"""A backlog far larger than one batch drains in one go: from `seqwatch deliver`, and from the
daemon's delivery job (not 1,000 events per 5 s tick). Real processes, real Redis, the signed
receiver verifying every POST.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from tests.integration._cli_helpers import Fakes, Setup, make_setup, run
from tests.integration._daemon_proc import Daemons
from worker.delivery.outbox import Route, enqueue
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import Event, EventType, event_id
from worker.store import keys
from worker.store.batch import Batch

SOURCE = "reply"
BACKLOG = 2_500  # 2.5x the old per-round cap of 1,000
DRAIN_TIMEOUT = 60.0


@pytest.fixture
def setup(tmp_path: Path, fakes: Fakes, redis_url: str, sync_redis: Redis) -> Setup:
    # Polls are far apart: the backlog below is all there is to deliver.
    return make_setup(tmp_path, fakes, redis_url=redis_url, sources=("reply",), slack=False)


async def _commit_backlog(redis_url: str) -> list[str]:
    batch, ids = Batch(), []
    routes = [Route(destination="hook", events=("*",), sources=())]
    for n in range(BACKLOG):
        enrollment = f"900:{n // 2}"
        state = State(status=Status.ACTIVE, raw_status="Active", step=n % 2 + 1)
        event = Event(
            id=event_id(source=SOURCE, enrollment_id=enrollment, event_type="x", change_key=str(n)),
            type=EventType.STEP_ADVANCED,
            source=SOURCE,
            provider="replyio",
            enrollment_id=enrollment,
            sequence=SequenceRef(id="900", name="Backlog"),
            contact=Contact(id=str(n // 2)),
            previous=state,
            current=state,
            detected_at=datetime(2026, 11, 22, tzinfo=UTC),
        )
        enqueue(batch, event, routes=routes, now_ms=1_000 + n)
        ids.append(event.id)
    redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        await batch.commit_unguarded(redis, lease_key=keys.lease(SOURCE))
    finally:
        await redis.aclose()
    return ids


def fill_backlog(redis: Redis, redis_url: str) -> list[str]:
    """BACKLOG step events of BACKLOG // 2 enrollments, queued for the webhook "hook"."""
    ids = asyncio.run(_commit_backlog(redis_url))
    assert redis.zcard(keys.due(SOURCE, "hook")) == BACKLOG
    return ids


def test_seqwatch_deliver_drains_the_whole_backlog(
    setup: Setup, fakes: Fakes, sync_redis: Redis, redis_url: str
) -> None:
    ids = fill_backlog(sync_redis, redis_url)
    result = run(setup, "deliver")
    assert result.code == 0, str(result)
    assert f"-> hook: {BACKLOG} delivered" in result.stdout
    assert sorted(fakes.hook.received_ids()) == sorted(ids)
    assert all(d.verified for d in fakes.hook.accepted)
    assert sync_redis.zcard(keys.due(SOURCE, "hook")) == 0


def test_the_daemon_drains_a_backlog_in_one_delivery_job(
    setup: Setup, tmp_path: Path, fakes: Fakes, sync_redis: Redis, redis_url: str
) -> None:
    ids = fill_backlog(sync_redis, redis_url)
    daemons = Daemons(setup, tmp_path)
    try:
        daemon = daemons.spawn("backlog")
        assert fakes.hook.wait_for(BACKLOG, timeout=DRAIN_TIMEOUT), daemon.output[-3000:]
        assert sorted(set(fakes.hook.received_ids())) == sorted(ids)
        code, _ = daemon.terminate()
        assert code == 0, daemon.output[-3000:]
        rounds = [e["delivered"] for e in daemon.logged("deliver") if e.get("destination")]
        assert max(rounds) == BACKLOG, rounds  # one job drained it all
        daemon.check_output()
    finally:
        daemons.close()


def test_sigterm_mid_drain_stops_promptly_and_loses_nothing(
    setup: Setup, tmp_path: Path, fakes: Fakes, sync_redis: Redis, redis_url: str
) -> None:
    ids = fill_backlog(sync_redis, redis_url)
    daemons = Daemons(setup, tmp_path)
    try:
        daemon = daemons.spawn("stopped")
        assert fakes.hook.wait_for(200, timeout=DRAIN_TIMEOUT), daemon.output[-3000:]
        code, took = daemon.terminate()
        assert code == 0, daemon.output[-3000:]
        assert took < 5.0, f"SIGTERM took {took:.1f} s"  # not the 20 s grace for running jobs
        daemon.check_output()
    finally:
        daemons.close()
    left = int(sync_redis.zcard(keys.due(SOURCE, "hook")))  # type: ignore[arg-type]
    assert 0 < left < BACKLOG
    assert sync_redis.exists(keys.delivery_lock(SOURCE, "hook")) == 0  # released on the way out
    assert run(setup, "deliver").code == 0
    assert sorted(set(fakes.hook.received_ids())) == sorted(ids)
