"""`status` on a real Redis: a poll in progress, the next poll, workers, failing and recovery.

The `seqwatch status` exit codes end to end are in test_cli.py; here each fact status reads is
produced the way the product produces it.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from worker.delivery.outbox import Attempts, Outbox
from worker.ops import progress
from worker.ops.status import destination_status, source_status, workers
from worker.ops.status_report import status
from worker.sources.base import RawPage
from worker.store import keys

SOURCE = "reply-emea"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Pages:
    """A Source whose listing hands over pages and lets the test look in between."""

    incremental = False

    def __init__(self, pages: Sequence[Sequence[Mapping[str, Any]]], clock: Clock) -> None:
        self._pages = pages
        self._clock = clock

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        for n, records in enumerate(self._pages):
            self._clock.now += 6  # each page takes 6 s to fetch
            yield RawPage(records=records, where=f"page {n + 1}")

    async def check(self) -> None:
        return None


async def test_a_running_listing_shows_its_progress_only_while_it_holds_the_lease(
    store: Redis,
) -> None:
    clock = Clock()
    tracker = progress.Progress(source=SOURCE, started_at=time.time() - 12)
    pages = Pages([[{}] * 100, [{}] * 100, [{}] * 50], clock)
    source = progress._Tracked(pages, store, tracker, clock=clock)
    seen: list[Any] = []
    with capture_logs() as logs:
        async for _ in source.pages():
            await store.set(keys.lease(SOURCE), "1", px=5000)
            seen.append((await source_status(store, SOURCE)).poll_in_progress)
    # Stored at the start and then at most once a second: here on every (6 s) page.
    assert [(p.pages, p.enrollments) for p in seen] == [(1, 100), (2, 200), (3, 250)]
    assert 12 <= seen[-1].elapsed_seconds < 20
    # Logged every 10 s of listing: at 12 s (page 2), not at 6 s or 18 s.
    assert [(e["event"], e["pages"], e["enrollments"]) for e in logs] == [("poll_progress", 2, 200)]
    await store.delete(keys.lease(SOURCE))
    assert (await source_status(store, SOURCE)).poll_in_progress is None  # lease gone: stale
    await progress.clear(store, tracker)
    assert not await store.exists(keys.progress(SOURCE))


async def test_next_poll_and_workers_are_reported(store: Redis) -> None:
    due = time.time() + 240
    await store.hset(keys.schedule(), SOURCE, repr(due))  # type: ignore[misc]
    report = await source_status(store, SOURCE)
    assert report.next_poll_due_at is not None
    assert abs(report.next_poll_due_at.timestamp() - due) < 0.001
    assert await workers(store) == []
    await store.set(keys.worker_health("host-1-ab12"), "j_complete=3 j_failed=0", ex=11)
    [worker] = await workers(store)
    assert (worker.id, worker.health) == ("host-1-ab12", "j_complete=3 j_failed=0")

    out = io.StringIO()
    assert await status(store, out, as_json=True, sources=[SOURCE], destinations=[]) == 0
    doc = json.loads(out.getvalue())
    assert doc["failing"] is False
    assert doc["workers"] == [{"id": "host-1-ab12", "health": "j_complete=3 j_failed=0"}]
    assert doc["sources"][0]["next_poll_due_at"].endswith("Z")
    assert doc["checked_at"].endswith("Z")


@pytest.mark.parametrize(("attempts", "failing"), [(1, False), (2, False), (3, True)])
async def test_a_destination_fails_after_three_failed_attempts_and_recovers(
    store: Redis, attempts: int, failing: bool
) -> None:
    outbox = Outbox(store, source=SOURCE, destination="crm")
    await store.zadd(keys.due(SOURCE, "crm"), {"evt_a": 1})
    now_ms = int(time.time() * 1000)
    await outbox.reschedule(
        "evt_a", due_ms=now_ms + 60_000,
        attempts=Attempts(count=attempts, first_failure_ms=now_ms, last_error="HTTP 503"),
    )  # fmt: skip
    await store.hset(keys.destination_health("crm"), mapping={"last_outcome": "failed"})  # type: ignore[misc]
    report = await destination_status(store, "crm", sources=[SOURCE], now_ms=now_ms)
    assert (report.pending, report.retrying, report.failing) == (1, 1, failing)

    out = io.StringIO()
    code = await status(store, out, as_json=False, sources=[SOURCE], destinations=["crm"])
    assert code == (1 if failing else 0)
    assert ("crm: FAILING;" in out.getvalue()) is failing

    await outbox.ack(["evt_a"])  # delivered at last: the cause is gone
    report = await destination_status(store, "crm", sources=[SOURCE], now_ms=now_ms)
    assert (report.pending, report.retrying, report.failing) == (0, 0, False)
