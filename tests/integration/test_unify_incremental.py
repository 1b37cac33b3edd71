"""Unify polls incrementally from the provider's own updated_at, never the worker clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tests.contract.providers import Sleeps, UnifyHarness
from tests.contract.test_provider_contract import ROUTES, SOURCE, drain, types
from worker.pipeline import PollResult, SourceRuntime, poll_source


@pytest.fixture
def unify() -> Iterator[UnifyHarness]:
    harness = UnifyHarness()
    harness.start()
    yield harness
    harness.stop()


def incremental(harness: UnifyHarness, *, full_sync_interval: float) -> SourceRuntime:
    full = harness.runtime(name=SOURCE, sleep=Sleeps())
    return SourceRuntime(
        name=full.name,
        provider=full.provider,
        source=full.source,
        normalize=full.normalize,
        full_sync_interval=full_sync_interval,
    )


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=lambda: datetime.now(UTC))


def listing_params(harness: UnifyHarness) -> list[dict[str, list[str]]]:
    return [dict(r.query) for r in harness.server.requests if r.path.endswith("/enrollments")]


async def test_after_the_baseline_only_changes_are_requested(
    store: Redis, unify: UnifyHarness
) -> None:
    runtime = incremental(unify, full_sync_interval=3600)
    ids = unify.seed(12)
    assert (await poll(store, runtime)).baseline
    newest = max(unify.world.enrollment(i)["updated_at"] for i in ids)  # type: ignore[index]
    unify.server.clear_requests()

    unify.finish(ids[0])
    unify.opt_out(ids[7])
    result = await poll(store, runtime)

    requests = listing_params(unify)
    assert len(requests) == 1  # ceil(2 changed / page) and no more
    assert requests[0]["updated_after"] == [newest]
    assert requests[0]["limit"] == ["5"]
    assert not result.full_listing
    assert types(await drain(store)) == sorted(
        [(ids[0], "enrollment.finished"), (ids[7], "enrollment.opted_out")]
    )

    # Inclusive bound: the last changes are listed again, and produce nothing.
    unify.server.clear_requests()
    again = await poll(store, runtime)
    assert again.enrollments >= 1
    assert await drain(store) == []
    newest = unify.world.enrollment(ids[7])["updated_at"]  # type: ignore[index]
    assert listing_params(unify)[0]["updated_after"] == [newest]


async def test_flags_remove_between_full_listings_and_deletions_wait_for_them(
    store: Redis, unify: UnifyHarness
) -> None:
    runtime = incremental(unify, full_sync_interval=3600)
    ids = unify.seed(6)
    await poll(store, runtime)
    unify._update(ids[1], is_canceled=True)
    unify.delete(ids[2])
    await poll(store, runtime)
    await poll(store, runtime)
    # Canceled is the provider's own flag; a hard deletion is invisible to incremental polls.
    assert types(await drain(store)) == [(ids[1], "enrollment.removed")]

    full_every_poll = incremental(unify, full_sync_interval=0)
    await poll(store, full_every_poll)
    assert await drain(store) == []
    await poll(store, full_every_poll)
    # Absent from two complete listings; the canceled one was already reported.
    assert types(await drain(store)) == [(ids[2], "enrollment.removed")]
