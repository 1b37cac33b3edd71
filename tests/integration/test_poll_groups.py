"""`seqwatch run` polls due sources in groups (one arq job per group): each source keeps its own
lease, outcome and retries; one failing source neither fails the others nor retries them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Retry
from redis.asyncio import Redis

from tests.contract.provider_replyio import ReplyioHarness
from tests.contract.providers import Sleeps
from worker.app import jobs
from worker.app.deps import Deps
from worker.ops.status import source_status

GOOD = ("g1", "g2", "g3")
BAD = "broken"


@pytest.fixture
def good() -> Iterator[ReplyioHarness]:
    harness = ReplyioHarness()
    harness.start()
    harness.seed(2)
    yield harness
    harness.stop()


@pytest.fixture
def bad() -> Iterator[ReplyioHarness]:
    harness = ReplyioHarness()
    harness.start()
    harness.faults.add("status", status=500, times=1000)
    yield harness
    harness.stop()


@pytest.fixture
async def arq_pool(redis_url: str, store: Redis) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


def deps_for(store: Redis, good: ReplyioHarness, bad: ReplyioHarness) -> Deps:
    sources = {name: good.runtime(name=name, sleep=Sleeps()) for name in GOOD}
    sources[BAD] = bad.runtime(name=BAD, sleep=Sleeps())
    return Deps(
        redis=store,
        sources=sources,
        poll_intervals=dict.fromkeys(sources, 60.0),
        failure_thresholds=dict.fromkeys(sources, 3),
        destinations={},
        routes=(),
    )


async def queued(pool: ArqRedis) -> list[tuple[str, tuple[Any, ...]]]:
    return sorted((j.function, j.args) for j in await pool.queued_jobs(queue_name=jobs.QUEUE))


async def test_a_failing_source_is_retried_alone_and_the_others_succeed(
    store: Redis, good: ReplyioHarness, bad: ReplyioHarness, arq_pool: ArqRedis
) -> None:
    deps = deps_for(store, good, bad)
    ctx: dict[str, Any] = {"deps": deps, "redis": arq_pool, "job_try": 1}
    outcome = await jobs.poll_group(ctx, [GOOD[0], BAD, GOOD[1], GOOD[2]])
    assert f"{BAD}: retrying" in outcome
    for name in GOOD:
        status = await source_status(store, name)
        assert status.last_outcome == "ok"
        assert status.tracked == 2
    assert (await source_status(store, BAD)).last_outcome == "failed"
    # Only the failing source is retried, as a single poll that knows it had one attempt.
    assert await queued(arq_pool) == [("poll", (BAD, 1))]


async def test_a_retried_source_gets_the_same_number_of_attempts(
    store: Redis, good: ReplyioHarness, bad: ReplyioHarness, arq_pool: ArqRedis
) -> None:
    deps = deps_for(store, good, bad)
    # Its first attempt was in a group: the retry job's first try is its second attempt...
    with pytest.raises(Retry):
        await jobs.poll({"deps": deps, "redis": arq_pool, "job_try": 1}, BAD, 1)
    # ...and the retry job's second try its third and last.
    assert await jobs.poll({"deps": deps, "redis": arq_pool, "job_try": 2}, BAD, 1) == "failed"
    # A source polled alone from the start still retries on its second try.
    with pytest.raises(Retry):
        await jobs.poll({"deps": deps, "redis": arq_pool, "job_try": 2}, BAD)


async def test_a_stopping_worker_hands_unstarted_polls_back(
    store: Redis, good: ReplyioHarness, bad: ReplyioHarness, arq_pool: ArqRedis
) -> None:
    deps = deps_for(store, good, bad)
    deps.stopping.set()
    outcome = await jobs.poll_group({"deps": deps, "redis": arq_pool}, list(GOOD))
    assert outcome == ", ".join(f"{name}: handed back" for name in GOOD)
    assert (await source_status(store, GOOD[0])).last_poll_at is None
    # Each is queued alone, due now, for the next worker (with no attempt counted yet).
    assert await queued(arq_pool) == [("poll", (name, 0)) for name in GOOD]


async def test_the_tick_enqueues_due_sources_in_groups(
    store: Redis, good: ReplyioHarness, bad: ReplyioHarness, arq_pool: ArqRedis
) -> None:
    deps = deps_for(store, good, bad)
    names = [f"s{k:02d}" for k in range(jobs.POLL_GROUP * 2 + 1)]
    deps.poll_intervals = dict.fromkeys(names, 60.0)
    await jobs._enqueue_due({"redis": arq_pool}, deps, now=1000.0)
    found = await queued(arq_pool)
    assert found == sorted(
        [
            ("poll_group", (names[: jobs.POLL_GROUP],)),
            ("poll_group", (names[jobs.POLL_GROUP : 2 * jobs.POLL_GROUP],)),
            ("poll", (names[-1],)),
        ]
    )
    # Claimed: a second tick at the same time enqueues nothing more.
    await jobs._enqueue_due({"redis": arq_pool}, deps, now=1000.0)
    assert len(await queued(arq_pool)) == 3


def test_groups_keep_order_and_size() -> None:
    assert jobs.groups(["a", "b", "c"], size=2) == [["a", "b"], ["c"]]
    assert jobs.groups([], size=2) == []
