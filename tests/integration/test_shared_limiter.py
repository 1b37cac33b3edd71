"""The provider quota is shared by every worker through Redis and honours Retry-After."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from worker.sources.shared_limiter import Quota, SharedRateLimiter


async def stamps(limiter: SharedRateLimiter, count: int) -> list[float]:
    taken = []
    for _ in range(count):
        await limiter.acquire()
        taken.append(time.monotonic())
    return taken


@pytest.mark.parametrize("requests", [10, 30])
async def test_three_workers_never_exceed_the_quota_in_any_window(
    store: Redis, requests: int
) -> None:
    window = 0.5
    quota = Quota(requests=requests, per_seconds=window)
    workers = [SharedRateLimiter(store, source="s", quotas=[quota]) for _ in range(3)]
    results = await asyncio.gather(*(stamps(w, requests) for w in workers))
    times = sorted(t for r in results for t in r)
    assert len(times) == 3 * requests
    # No window holds more than the quota (small slack for clock reads).
    for first, later in zip(times, times[requests:], strict=False):
        assert later - first >= window - 0.02
    # ...and the workers together still use most of it.
    assert times[-1] - times[0] <= 3 * window * 1.3


async def test_every_window_must_have_room(store: Redis) -> None:
    # 5 a second but only 6 per 2 s: the second window governs after the burst.
    limiter = SharedRateLimiter(
        store,
        source="s",
        quotas=[Quota(requests=5, per_seconds=1), Quota(requests=6, per_seconds=2)],
    )
    times = await stamps(limiter, 7)
    assert times[6] - times[0] >= 2.0 - 0.02


async def test_retry_after_from_one_worker_holds_back_the_others(store: Redis) -> None:
    quota = Quota(requests=1000, per_seconds=1)
    first, second = (SharedRateLimiter(store, source="s", quotas=[quota]) for _ in range(2))
    await first.acquire()
    await first.defer(0.5)
    started = time.monotonic()
    await second.acquire()
    assert time.monotonic() - started >= 0.45


async def test_sources_do_not_share_quotas(store: Redis) -> None:
    quota = Quota(requests=2, per_seconds=10)
    a = SharedRateLimiter(store, source="a", quotas=[quota])
    b = SharedRateLimiter(store, source="b", quotas=[quota])
    started = time.monotonic()
    await a.acquire()
    await b.acquire()
    assert time.monotonic() - started < 0.2
