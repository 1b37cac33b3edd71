"""A 429 that names no delay waits for the quota window the limiter knows (ProviderClient)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from worker.errors import SourceUnavailable
from worker.sources.http import ProviderClient

BASE = "https://api.getbase.test"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class WindowLimiter:
    """Knows Zendesk Sell's windows (10/s, 36,000/h) and records every defer."""

    def __init__(self, windows: tuple[float, ...] = (1.0, 3600.0)) -> None:
        self.acquired = 0
        self.deferred: list[float] = []
        self._windows = windows

    @property
    def windows(self) -> tuple[float, ...]:
        return self._windows

    async def acquire(self) -> None:
        self.acquired += 1

    async def defer(self, seconds: float) -> None:
        self.deferred.append(seconds)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client(http: httpx.AsyncClient, limiter: object, sleep: Sleeps) -> ProviderClient:
    return ProviderClient(
        source="sell",
        http=http,
        base_url=BASE,
        headers={"Authorization": "Bearer tok-0123456789"},
        limiter=limiter,  # type: ignore[arg-type]
        sleep=sleep,
        random=lambda: 1.0,
    )


async def test_429_without_retry_after_waits_out_the_short_window(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/v2/x").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"ok": True})]
    )
    sleeps, limiter = Sleeps(), WindowLimiter()
    got = await client(http, limiter, sleeps).get_json("/v2/x", where="page 1")
    assert got == {"ok": True}
    assert route.call_count == 2
    assert sleeps.calls == [1.0]
    assert limiter.deferred == [1.0]  # every worker waits the window, not just this one


async def test_repeated_429_escalates_to_the_long_window_and_gives_up(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """The hour quota is spent: no five quick retries, the poll fails naming the wait."""
    route = router.get("/v2/x").respond(429)
    sleeps, limiter = Sleeps(), WindowLimiter()
    with pytest.raises(SourceUnavailable) as info:
        await client(http, limiter, sleeps).get_json("/v2/x", where="page 1")
    assert route.call_count == 2
    assert sleeps.calls == [1.0]
    assert "retry after 3600 s" in str(info.value)


async def test_retry_after_still_wins_over_the_window(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v2/x").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={}),
        ]
    )
    sleeps, limiter = Sleeps(), WindowLimiter()
    await client(http, limiter, sleeps).get_json("/v2/x", where="page 1")
    assert sleeps.calls == [3.0]
    assert limiter.deferred == [3.0]


async def test_a_limiter_without_windows_keeps_the_backoff(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v2/x").mock(side_effect=[httpx.Response(429), httpx.Response(200, json={})])
    sleeps, limiter = Sleeps(), WindowLimiter(windows=())
    await client(http, limiter, sleeps).get_json("/v2/x", where="page 1")
    assert sleeps.calls == [0.5]  # the exponential backoff's first step
    assert limiter.deferred == []


async def test_5xx_is_not_a_quota_refusal(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v2/x").mock(side_effect=[httpx.Response(502), httpx.Response(200, json={})])
    sleeps, limiter = Sleeps(), WindowLimiter()
    await client(http, limiter, sleeps).get_json("/v2/x", where="page 1")
    assert sleeps.calls == [0.5]
    assert limiter.deferred == []


async def test_attempts_lowers_the_retry_budget(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/v2/x").respond(503)
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable, match="gave up after 1 attempts"):
        await client(http, WindowLimiter(), sleeps).get_json("/v2/x", where="lookup", attempts=1)
    assert route.call_count == 1
    assert sleeps.calls == []


async def test_shared_limiter_windows_come_from_its_quotas() -> None:
    from redis.asyncio import Redis

    from worker.sources.shared_limiter import Quota, SharedRateLimiter

    limiter = SharedRateLimiter(
        Redis(),  # never contacted: windows are configuration
        source="sell",
        quotas=(Quota(requests=36_000, per_seconds=3600), Quota(requests=10, per_seconds=1)),
    )
    assert limiter.windows == (1, 3600)


async def test_a_single_attempt_429_still_holds_every_worker_back(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v2/leads").respond(429)
    sleeps, limiter = Sleeps(), WindowLimiter()
    with pytest.raises(SourceUnavailable, match="gave up after 1 attempts"):
        await client(http, limiter, sleeps).get_json("/v2/leads", where="lookup", attempts=1)
    assert limiter.deferred == [1.0]  # the listing's next page waits the window too
    assert sleeps.calls == []  # the caller itself does not wait
