"""Unify polls incrementally from the provider's own updated_at, never the worker clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tests.contract.providers import Sleeps, UnifyHarness
from tests.contract.test_provider_contract import ROUTES, SOURCE, drain, types
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.detect.watermark import next_watermark
from worker.sources.base import RawPage, Source


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
    ids = unify.seed(4)  # one page: its newest updated_at is exact
    assert (await poll(store, runtime)).baseline
    newest = max(unify.world.enrollment(i)["updated_at"] for i in ids)  # type: ignore[index]
    unify.server.clear_requests()

    unify.finish(ids[0])
    unify.opt_out(ids[3])
    result = await poll(store, runtime)

    requests = listing_params(unify)
    assert len(requests) == 1  # ceil(2 changed / page) and no more
    assert requests[0]["updated_after"] == [newest]
    assert requests[0]["limit"] == ["5"]
    assert not result.full_listing
    assert types(await drain(store)) == sorted(
        [(ids[0], "enrollment.finished"), (ids[3], "enrollment.opted_out")]
    )

    # Inclusive bound: the last changes are listed again, and produce nothing.
    unify.server.clear_requests()
    again = await poll(store, runtime)
    assert again.enrollments >= 1
    assert await drain(store) == []
    newest = unify.world.enrollment(ids[3])["updated_at"]  # type: ignore[index]
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


class ChangesBehindTheListing:
    """Wraps a source: after its first page is served, an early record changes (as in life)."""

    def __init__(self, inner: Source, change: Callable[[], None]) -> None:
        self.inner = inner
        self.change = change

    @property
    def incremental(self) -> bool:
        return self.inner.incremental

    async def check(self) -> None:
        await self.inner.check()

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        first = True
        async for page in self.inner.pages(updated_after=updated_after):
            yield page
            if first:
                self.change()
                first = False


async def test_a_record_changed_behind_a_multi_page_listing_is_not_skipped(
    store: Redis, unify: UnifyHarness
) -> None:
    plain = incremental(unify, full_sync_interval=3600)
    ids = unify.seed(12)
    await poll(store, plain)
    await poll(store, plain)  # single-page incremental polls from here on are exact

    def meanwhile() -> None:
        unify.opt_out(ids[0])  # on page 1, already served
        unify.finish(ids[11])  # on page 3, later still: the newest updated_at of the listing

    racing = SourceRuntime(
        name=plain.name, provider=plain.provider, normalize=plain.normalize,
        full_sync_interval=3600, source=ChangesBehindTheListing(plain.source, meanwhile),
    )  # fmt: skip
    for enrollment_id in ids:  # every record changed: the next listing spans three pages
        unify._update(enrollment_id, is_blocked=True)
    await poll(store, racing)
    first = types(await drain(store))
    assert (ids[11], "enrollment.finished") in first
    assert (ids[0], "enrollment.opted_out") not in first  # its page was served before the change
    await poll(store, plain)
    assert (ids[0], "enrollment.opted_out") in types(await drain(store))


@pytest.mark.parametrize(
    ("previous", "newest", "pages", "seconds", "expected"),
    [
        (None, None, 0, 1.0, None),
        (None, "2026-01-05T09:00:10Z", 1, 5.0, "2026-01-05T09:00:10Z"),  # one page: exact
        ("2026-01-05T09:00:00Z", "2026-01-05T09:10:00Z", 3, 30.0, "2026-01-05T09:08:30Z"),
        ("2026-01-05T09:09:59Z", "2026-01-05T09:10:00Z", 3, 30.0, "2026-01-05T09:09:59Z"),
    ],
)
def test_next_watermark(
    previous: str | None, newest: str | None, pages: int, seconds: float, expected: str | None
) -> None:
    got = next_watermark(
        previous=previous, newest_seen=newest, pages=pages, listing_seconds=seconds
    )
    assert got == expected
