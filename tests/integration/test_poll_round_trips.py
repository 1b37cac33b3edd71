"""A poll's fixed cost in Redis round trips: the opening takes the first request's quota slot
and reads the source's memory; the last commit carries the poll's outcome and health."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.contract.provider_replyio import API_KEY, SEQUENCE, ReplyioHarness
from tests.contract.providers import Sleeps
from tests.integration._replyio_rig import outbox_events
from worker.app.deps import Deps
from worker.app.service import run_poll
from worker.delivery.outbox import Route
from worker.detect.pipeline import LeaseBusy, SourceRuntime
from worker.normalize import NORMALIZERS
from worker.ops.status import source_status
from worker.sources import replyio
from worker.sources.http import ProviderClient
from worker.sources.memory import RedisMemory
from worker.sources.shared_limiter import Quota, SharedRateLimiter
from worker.store import keys
from worker.store.redis_conn import FastPackConnection

SOURCE = "trips"
# A slot every ~1.1 s after a burst of 100: a poll never waits, and the quota's arrival time
# tells how many slots were taken.
QUOTA = Quota(requests=1000, per_seconds=1000)


def runtime(
    store: Redis, reply: ReplyioHarness, *, page_size: int = 5, sequences: tuple[str, ...] = ()
) -> SourceRuntime:
    limiter = SharedRateLimiter(store, source=SOURCE, quotas=[QUOTA])
    memory = RedisMemory(store, source=SOURCE)
    client = ProviderClient(
        source=SOURCE,
        http=reply.http,
        base_url=reply.server.base_url,
        headers=replyio.auth_headers(API_KEY),
        limiter=limiter,
        sleep=Sleeps(),
        max_attempts=3,
    )
    source = replyio.ReplyioSource(
        name=SOURCE,
        client=client,
        sequences=sequences,
        page_size=page_size,
        memory=memory,
        api_version="v3",
    )
    return SourceRuntime(
        name=SOURCE, provider="replyio", source=source, normalize=NORMALIZERS["replyio"],
        limiter=limiter, provider_memory=memory,
    )  # fmt: skip


def deps_for(store: Redis, rt: SourceRuntime) -> Deps:
    return Deps(
        redis=store,
        sources={SOURCE: rt},
        poll_intervals={SOURCE: 60},
        failure_thresholds={SOURCE: 3},
        destinations={},
        routes=(Route(destination="ops", events=("source.*",), sources=()),),
    )


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts what the product's connections send: one per command or pipeline."""
    sent = [0]
    original = FastPackConnection.send_packed_command

    async def counted(self: FastPackConnection, *args: Any, **kwargs: Any) -> None:
        sent[0] += 1
        await original(self, *args, **kwargs)

    monkeypatch.setattr(FastPackConnection, "send_packed_command", counted)
    return sent


async def slots_taken(store: Redis, since_ms: float) -> int:
    """Quota slots taken since `since_ms` (the arrival time moves one interval per slot)."""
    tat = float(await store.get(keys.rate_window(SOURCE, 0)) or since_ms)
    return round((tat - since_ms) / QUOTA.interval_ms)


async def test_an_unchanged_repoll_costs_three_round_trips(
    store: Redis, reply: ReplyioHarness, round_trips: list[int]
) -> None:
    reply.seed(3)
    deps = deps_for(store, runtime(store, reply))
    await run_poll(deps, SOURCE)
    round_trips[0] = 0
    result = await run_poll(deps, SOURCE)
    assert result.enrollments == 3
    assert result.events == 0
    # The opening (lease, quota slot, memory, layout, the source's one bucket), the last commit
    # (writes, outcome, health, lease release). The second request's quota slot is the third.
    assert round_trips[0] == 3
    status = await source_status(store, SOURCE)
    assert status.last_outcome == "ok"
    assert status.last_poll_requests == 2
    assert status.consecutive_failures == 0


async def test_an_allow_listed_sources_repoll_costs_two_round_trips_and_one_request(
    store: Redis, reply: ReplyioHarness, round_trips: list[int]
) -> None:
    """Its sequence listing is remembered (worker/sources/known_sequences.py): the contacts
    request is the poll's first, and takes the slot the opening granted."""
    reply.seed(3)
    deps = deps_for(store, runtime(store, reply, sequences=(str(SEQUENCE),)))
    await run_poll(deps, SOURCE)
    seconds, micros = await store.time()
    before_ms = seconds * 1000 + micros // 1000
    await store.delete(keys.rate_window(SOURCE, 0))
    round_trips[0] = 0
    result = await run_poll(deps, SOURCE)
    assert (result.enrollments, result.events) == (3, 0)
    assert round_trips[0] == 2  # the opening and the last commit
    assert await slots_taken(store, before_ms) == 1
    status = await source_status(store, SOURCE)
    assert (status.last_outcome, status.last_poll_requests) == ("ok", 1)
    # A change is still an event, its sequence named by the remembered listing.
    hooks = Route(destination="hooks", events=("enrollment.*",), sources=())
    deps = dataclasses.replace(deps, routes=(*deps.routes, hooks))
    reply.world.add_sequence(SEQUENCE, "Renamed since", steps=5)  # keeps its contacts
    reply.finish(reply.seed(1)[0])
    assert (await run_poll(deps, SOURCE)).events == 1
    (event,) = (await outbox_events(store, SOURCE)).values()
    assert event["type"] == "enrollment.enrolled"
    assert event["data"]["sequence"] == {"id": str(SEQUENCE), "name": "Contract sequence"}  # type: ignore[index]


async def test_scripts_redis_lost_are_sent_whole_once_and_run_once(
    store: Redis, reply: ReplyioHarness, round_trips: list[int]
) -> None:
    """After a restart Redis knows no scripts: each script seqwatch sends by its SHA1 is sent
    whole after its NOSCRIPT (the opening's reads are read again) and runs once: the lease is
    taken and released once, each request takes one quota slot; then the SHA1 suffices."""
    reply.seed(3)
    deps = deps_for(store, runtime(store, reply))
    await run_poll(deps, SOURCE)
    await store.script_flush()  # as after a Redis restart
    await store.delete(keys.rate_window(SOURCE, 0))
    seconds, micros = await store.time()
    before_ms = seconds * 1000 + micros // 1000
    round_trips[0] = 0
    result = await run_poll(deps, SOURCE)
    assert (result.enrollments, result.events) == (3, 0)
    # The opening, the quota slot and the last commit: each once more.
    assert round_trips[0] == 6
    assert await slots_taken(store, before_ms) == 2
    assert await store.get(keys.lease(SOURCE)) is None  # released by the last commit, once
    status = await source_status(store, SOURCE)
    assert (status.last_outcome, status.last_poll_requests) == ("ok", 2)
    round_trips[0] = 0
    await run_poll(deps, SOURCE)
    assert round_trips[0] == 3


async def test_a_source_past_one_bucket_reads_each_page_in_a_round_trip(
    store: Redis, reply: ReplyioHarness, round_trips: list[int]
) -> None:
    reply.seed(60)  # two buckets; three pages of 25 with the sequence listing's request
    deps = deps_for(store, runtime(store, reply, page_size=25))
    await run_poll(deps, SOURCE)
    assert await store.hget(keys.meta(SOURCE), "buckets") == "2"  # type: ignore[misc]
    round_trips[0] = 0
    result = await run_poll(deps, SOURCE)
    assert (result.enrollments, result.events, result.pages) == (60, 0, 3)
    # The opening, a quota slot for each page's request and its read, the last commit.
    assert round_trips[0] == 1 + 3 + 3 + 1


async def test_the_quota_counts_each_request_once(store: Redis, reply: ReplyioHarness) -> None:
    reply.seed(12)  # three pages of five: four requests with the sequence listing
    deps = deps_for(store, runtime(store, reply))
    seconds, micros = await store.time()
    before_ms = seconds * 1000 + micros // 1000  # Redis's clock, as the quota's
    await run_poll(deps, SOURCE)
    status = await source_status(store, SOURCE)
    assert status.last_poll_requests == 4
    assert await slots_taken(store, before_ms) == 4


async def test_a_busy_source_takes_no_quota_slot(store: Redis, reply: ReplyioHarness) -> None:
    reply.seed(1)
    deps = deps_for(store, runtime(store, reply))
    await store.set(keys.lease(SOURCE), "someone else", px=10_000)
    with pytest.raises(LeaseBusy):
        await run_poll(deps, SOURCE)
    assert await store.get(keys.rate_window(SOURCE, 0)) is None


async def test_memory_read_at_the_opening_is_not_kept_past_the_poll(
    store: Redis, reply: ReplyioHarness
) -> None:
    reply.seed(1)
    rt = runtime(store, reply)
    deps = deps_for(store, rt)
    await run_poll(deps, SOURCE)
    assert rt.provider_memory is not None
    # Between polls the memory is read from Redis again (another worker may have polled).
    await store.hset(keys.provider_memory(SOURCE), "archived_listed_at", "12.5")  # type: ignore[misc]
    assert await rt.provider_memory.get("archived_listed_at") == "12.5"
    assert await rt.provider_memory.get_many("archived_listed_at", "api_version") == [
        "12.5",
        "v3",
    ]


async def test_recovery_is_announced_from_the_last_commit(
    store: Redis, reply: ReplyioHarness
) -> None:
    reply.seed(1)
    deps = deps_for(store, runtime(store, reply))
    await store.hset(keys.meta(SOURCE), mapping={"health": "failing", "consecutive_failures": 4})  # type: ignore[misc]
    await run_poll(deps, SOURCE)
    status = await source_status(store, SOURCE)
    assert not status.failing
    assert status.consecutive_failures == 0
    assert await store.zcard(keys.due(SOURCE, "ops")) == 1  # source.recovered
