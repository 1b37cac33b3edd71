"""Three workers polling one source at its quota: the provider never has to answer 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis

from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.quota import QuotaGate
from worker.demo.fakes.replyio import ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.detect.pipeline import LeaseBusy, SourceRuntime, poll_source
from worker.errors import SourceError, SourceUnavailable
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter, RateLimiter
from worker.sources.replyio import ReplyioSource
from worker.sources.shared_limiter import Quota, SharedRateLimiter

KEY = "quota-test-key-123"
QUOTA = Quota(requests=10, per_seconds=1.0)


@dataclass(frozen=True)
class Served:
    gate: QuotaGate
    base_url: str


@pytest.fixture
def served() -> Iterator[Served]:
    world = ReplyioWorld()
    world.add_sequence(100, "Quota")
    for contact in range(1, 13):
        world.add_contact(100, contact, email=f"c{contact}@example.com")
    quota_gate = QuotaGate(
        ReplyioApp(world, api_key=KEY), requests=QUOTA.requests, per_seconds=QUOTA.per_seconds
    )
    server = FakeServer(quota_gate)
    yield Served(gate=quota_gate, base_url=server.start())
    server.stop()


def runtime(base_url: str, limiter: RateLimiter, http: httpx.AsyncClient) -> SourceRuntime:
    client = ProviderClient(
        source="q", http=http, base_url=base_url, headers={"X-API-Key": KEY},
        limiter=limiter, max_attempts=1,
    )  # fmt: skip
    source = ReplyioSource(name="q", client=client, sequences=(), page_size=5)
    return SourceRuntime(
        name="q", provider="replyio", source=source, normalize=NORMALIZERS["replyio"]
    )


async def keep_polling(store: Redis, rt: SourceRuntime, *, until: float) -> int:
    failures = 0
    while time.monotonic() < until:
        try:
            await poll_source(store, rt, routes=(), now=lambda: datetime.now(UTC))
        except LeaseBusy:
            await asyncio.sleep(0.005)
        except SourceError:
            failures += 1
    return failures


async def three_workers(store: Redis, served: Served, limiters: list[RateLimiter]) -> int:
    base_url = served.base_url
    async with httpx.AsyncClient(timeout=5) as http:
        until = time.monotonic() + 2.5
        failed = await asyncio.gather(
            *(keep_polling(store, runtime(base_url, lim, http), until=until) for lim in limiters)
        )
    return sum(failed)


async def test_a_shared_quota_keeps_three_workers_under_the_providers_limit(
    store: Redis, served: Served
) -> None:
    limiters: list[RateLimiter] = [
        SharedRateLimiter(store, source="q", quotas=[QUOTA]) for _ in range(3)
    ]
    failed = await three_workers(store, served, limiters)
    assert served.gate.refused == 0
    assert failed == 0
    assert served.gate.admitted >= 15  # and the quota was actually used


async def test_the_fake_does_enforce_the_quota(store: Redis, served: Served) -> None:
    # Each worker pacing itself alone at the full quota: together they overrun it.
    limiters: list[RateLimiter] = [PacingLimiter(per_second=10) for _ in range(3)]
    await three_workers(store, served, limiters)
    assert served.gate.refused > 0


async def test_each_source_keeps_its_own_timeout_on_a_shared_client() -> None:
    world = ReplyioWorld()
    world.add_sequence(100, "Slow")
    faults = FaultPlan()
    faults.add("timeout", delay=2.0, times=10)
    server = FakeServer(ReplyioApp(world, api_key=KEY, faults=faults))
    base_url = server.start()
    try:
        async with httpx.AsyncClient(timeout=30) as shared:
            client = ProviderClient(
                source="q", http=shared, base_url=base_url, headers={"X-API-Key": KEY},
                limiter=PacingLimiter(per_second=1000), max_attempts=1, timeout=0.3,
            )  # fmt: skip
            started = time.monotonic()
            with pytest.raises(SourceUnavailable, match=r"timed out|Timeout"):
                await client.get_json("/v4/sequences", where="sequences")
            assert time.monotonic() - started < 1.5  # not the shared client's 30 s
    finally:
        faults.wake()
        server.stop()
