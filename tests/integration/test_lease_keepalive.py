"""The background lease renewal ends when its holder is done, even if a cancel gets lost.

A cancel that lands inside a Redis call can surface as another error (a read timer firing in
the same instant) and be swallowed by the renewal's retry; under load this left a delivery
waiting forever for a renewal loop that kept renewing.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from worker.store import lease


async def test_a_renewal_that_swallows_its_cancel_still_stops(
    store: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = await lease.try_acquire(store, source="s", ttl_ms=300)
    assert held is not None
    real_renew = lease.renew
    renewals = 0
    swallowed = asyncio.Event()

    async def renew_swallowing_cancel(redis: Redis, which: lease.Lease) -> bool:
        nonlocal renewals
        renewals += 1
        if renewals == 1:
            try:
                await asyncio.sleep(0.3)  # the holder finishes while this call is in flight
            except asyncio.CancelledError:
                swallowed.set()
                raise TimeoutError("read timed out") from None  # the cancel comes out as this
        return await real_renew(redis, which)  # later renewals succeed: the lease stays alive

    monkeypatch.setattr(lease, "renew", renew_swallowing_cancel)

    async def hold_briefly() -> None:
        async with lease.kept_alive(store, held):
            await asyncio.sleep(0.15)  # the first renewal (every ttl/3 = 100 ms) is under way

    loop = asyncio.get_running_loop()
    started = loop.time()
    # A renewal that never ends keeps its holder waiting; 3 s is ten lease lifetimes.
    await asyncio.wait_for(hold_briefly(), timeout=3)
    assert loop.time() - started < 2.5  # the holder was not kept waiting for the renewal
    assert swallowed.is_set()
    after = renewals
    await asyncio.sleep(0.5)
    assert renewals == after  # nothing renews once the holder is done


async def test_a_lost_lease_is_reported_once(store: Redis) -> None:
    held = await lease.try_acquire(store, source="s", ttl_ms=150)
    assert held is not None
    lost: list[str] = []
    async with lease.kept_alive(store, held, on_lost=lambda: lost.append("lost")):
        await store.set(held.key, "someone-else")
        await asyncio.sleep(0.3)
    assert lost == ["lost"]
    assert await store.get(held.key) == "someone-else"
