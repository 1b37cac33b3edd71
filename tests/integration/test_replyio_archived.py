"""An account of 500 sequences, mostly archived, against the fake Reply.io API (v3) and the
real pipeline on a real Redis: ordinary polls fit Reply's 100 requests/minute, archived
enrollments are kept (never absent), and the full-sync poll still sees their changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.contract.test_provider_contract import ROUTES, drain, types
from worker.demo.fakes.replyio import ContactStatus, ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.normalize import NORMALIZERS
from worker.sources import replyio
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.memory import RedisMemory
from worker.sources.metering import metering
from worker.store import keys
from worker.store.redis_io import awaited

SOURCE = "contract-src"  # the name ROUTES and drain() use
KEY = "rk-archived-test-0042"
LIVE, ARCHIVED = 25, 475
DAY = 86_400.0
QUOTA_PER_MINUTE = 100  # Reply.io: 100 requests/minute per user


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> ReplyioWorld:
    world = ReplyioWorld()
    for n in range(1, LIVE + ARCHIVED + 1):
        world.add_sequence(n, f"Sequence {n}", status="Active" if n <= LIVE else "Archived")
        for c in range(2):
            world.add_contact(n, n * 10 + c, email=f"p{n}-{c}@example.com")
    return world


@pytest.fixture
def server(world: ReplyioWorld) -> Iterator[FakeServer]:
    with FakeServer(ReplyioApp(world, api_key=KEY)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def runtime(
    server: FakeServer, http: httpx.AsyncClient, store: Redis, clock: Clock
) -> SourceRuntime:
    client = ProviderClient(
        source=SOURCE,
        http=http,
        base_url=server.base_url,
        headers=replyio.auth_headers(KEY),
        limiter=PacingLimiter(per_second=10_000),
    )
    source = replyio.ReplyioSource(
        name=SOURCE,
        client=client,
        sequences=(),
        memory=RedisMemory(store, source=SOURCE),
        full_sync_interval=DAY,
        clock=clock,
    )
    return SourceRuntime(
        name=SOURCE, provider="replyio", source=source, normalize=NORMALIZERS["replyio"]
    )


async def poll(store: Redis, rt: SourceRuntime) -> tuple[PollResult, int]:
    with metering() as requests:
        result = await poll_source(store, rt, routes=ROUTES, now=lambda: datetime.now(UTC))
    return result, requests.count


async def test_ordinary_polls_of_a_mostly_archived_account_fit_the_quota(
    store: Redis, world: ReplyioWorld, server: FakeServer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    rt = runtime(server, http, store, clock)
    baseline, baseline_requests = await poll(store, rt)
    assert baseline.enrollments == 2 * (LIVE + ARCHIVED)
    # probe + one sequences page (top=1000) + every sequence's contacts.
    assert baseline_requests == 1 + 1 + LIVE + ARCHIVED

    for _ in range(3):  # more than the two absences that would remove an enrollment
        clock.now += 300
        result, requests = await poll(store, rt)
        # One sequences page plus the live sequences: far under a minute's quota.
        assert requests == 1 + LIVE
        assert requests <= QUOTA_PER_MINUTE
        assert (result.enrollments, result.removed, result.events) == (2 * LIVE, 0, 0)
    assert await drain(store) == []
    tracked = await awaited(store.hget(keys.meta(SOURCE), "tracked"))
    assert int(tracked or 0) == 2 * (LIVE + ARCHIVED)

    # Live sequences are still watched closely: a removal there is seen on ordinary polls.
    world.remove_contact(1, 10)
    world.set_status(ARCHIVED + LIVE, (ARCHIVED + LIVE) * 10, ContactStatus.FINISHED)
    for _ in range(2):
        clock.now += 300
        await poll(store, rt)
    assert types(await drain(store)) == [("1:10", "enrollment.removed")]

    # The archived change waits for the full-sync interval, then is seen.
    clock.now += DAY
    result, requests = await poll(store, rt)
    assert requests == 1 + LIVE + ARCHIVED
    last = LIVE + ARCHIVED
    assert types(await drain(store)) == [(f"{last}:{last * 10}", "enrollment.finished")]


async def test_a_sequence_archived_after_the_baseline_keeps_its_enrollments(
    store: Redis, world: ReplyioWorld, server: FakeServer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    rt = runtime(server, http, store, clock)
    await poll(store, rt)
    world.archive_sequence(1)
    world.remove_contact(1, 11)  # unseen until the next full listing
    for _ in range(3):
        clock.now += 300
        result, _ = await poll(store, rt)
        assert result.removed == 0
    assert await drain(store) == []
    clock.now += DAY
    await poll(store, rt)
    await poll(store, rt)  # absent from two complete listings of that sequence...
    assert types(await drain(store)) == []  # ...but the second one skipped it again
    clock.now += DAY
    await poll(store, rt)
    assert types(await drain(store)) == [("1:11", "enrollment.removed")]


async def reads(store: Redis) -> tuple[int, int]:
    """(HLEN, HGETALL) calls so far: an absence sweep reads buckets with these."""
    stats: dict[str, Any] = await store.info("commandstats")
    return tuple(  # type: ignore[return-value]
        int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("hlen", "hgetall")
    )


async def test_ordinary_polls_do_not_reread_the_archived_enrollments(
    store: Redis, server: FakeServer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    rt = runtime(server, http, store, clock)
    await poll(store, rt)
    clock.now += 300
    before = await reads(store)
    await poll(store, rt)  # the first ordinary poll looks, and remembers what it passed over
    after = await reads(store)
    looked = (after[0] - before[0], after[1] - before[1])
    for _ in range(3):
        clock.now += 300
        before = await reads(store)
        result, _ = await poll(store, rt)
        after = await reads(store)
        assert (result.enrollments, result.removed) == (2 * LIVE, 0)
        # No HLEN: the sweep names no bucket to read (it HLENs a group's buckets first), and
        # none of the HGETALLs the first poll made per bucket.
        assert after[0] - before[0] == 0 < looked[0]
        assert after[1] - before[1] <= looked[1] - looked[0]


async def test_a_live_removal_is_seen_after_a_full_sync_removed_an_archived_enrollment(
    store: Redis, world: ReplyioWorld, server: FakeServer, http: httpx.AsyncClient
) -> None:
    """Counts alone would match here (one archived enrollment fewer, one live one missing):
    the remembered tombstone count tells the sweep to look."""
    clock = Clock()
    rt = runtime(server, http, store, clock)
    await poll(store, rt)
    clock.now += 300
    await poll(store, rt)
    last = LIVE + ARCHIVED
    world.remove_contact(last, last * 10)
    for _ in range(2):  # two full listings without it: tombstoned
        clock.now += DAY
        await poll(store, rt)
    assert types(await drain(store)) == [(f"{last}:{last * 10}", "enrollment.removed")]
    world.remove_contact(1, 10)
    for _ in range(2):
        clock.now += 300
        await poll(store, rt)
    assert types(await drain(store)) == [("1:10", "enrollment.removed")]
