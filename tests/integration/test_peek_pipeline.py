"""The pipeline normalizes in full only what changed, and a record `peek` reads but the full
normalizer refuses is still quarantined with its stored state untouched."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from tests.integration._replyio_rig import (
    due_ids,
    now,
    outbox_events,
    replyio_runtime,
    small_world,
)
from worker.delivery.outbox import Route
from worker.demo.fakes.faults import FaultKind, FaultPlan
from worker.detect.pipeline import poll_source
from worker.enrollment import Enrollment, Status
from worker.normalize import ProviderNormalizer, replyio
from worker.normalize.fields import Peek
from worker.ops.status import source_status
from worker.sources.base import RawPage
from worker.sources.typed import TypedRecords
from worker.store.state import StateStore

SOURCE = "peek-src"


class CountingNormalizer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, record: Mapping[str, Any], *, page: RawPage) -> Enrollment:
        enrollment = replyio.normalize(record, page=page)
        self.calls.append(enrollment.enrollment_id)
        return enrollment


@pytest.mark.parametrize("api_version", ["v3", "v4"])  # v4 pages are read typed
async def test_only_new_and_changed_records_are_normalized_in_full(
    store: Redis, api_version: str
) -> None:
    world = small_world(contacts=5)
    full = CountingNormalizer()
    async with replyio_runtime(world, source=SOURCE, api_version=api_version) as plain:
        normalize = ProviderNormalizer(full, replyio.peek, replyio.read_typed)
        runtime = dataclasses.replace(plain, normalize=normalize)
        await poll_source(store, runtime, routes=(), now=now)
        assert sorted(full.calls) == [f"100:{n}" for n in range(1, 6)]  # the baseline: all new

        full.calls.clear()
        result = await poll_source(store, runtime, routes=(), now=now)
        assert (result.enrollments, result.events, full.calls) == (5, 0, [])

        world.advance_step(100, 3)
        result = await poll_source(store, runtime, routes=(), now=now)
        assert full.calls == ["100:3"]
        assert result.by_type == {"enrollment.step_advanced": 1}


def lenient_peek(record: Mapping[str, Any], *, page: RawPage) -> Peek:
    """A peek that reads what the normalizer would refuse (the property tests forbid this):
    the pipeline must still quarantine the record."""
    state = (Status.ACTIVE, "lenient", None, None, None, None, None, None)
    return f"100:{record['contactId']}", None, state


async def test_a_record_peek_reads_but_the_normalizer_refuses_is_quarantined(
    store: Redis,
) -> None:
    world, faults = small_world(contacts=3), FaultPlan()
    async with replyio_runtime(world, source=SOURCE, faults=faults) as plain:
        await poll_source(store, plain, routes=(), now=now)
        before = await StateStore(store, source=SOURCE).stored()
        runtime = dataclasses.replace(
            plain, normalize=ProviderNormalizer(replyio.normalize, lenient_peek)
        )
        faults.add(FaultKind.MISSING_FIELD, field="statusInSequence", path_contains="/contacts")
        result = await poll_source(store, runtime, routes=(), now=now)
        assert result.quarantined == 1
        status = await source_status(store, SOURCE)
        assert status.quarantined == 1  # not released by the same page
        assert status.quarantine_error is not None
        bad = status.quarantine_error["enrollment_id"]
        assert bad is not None
        after = await StateStore(store, source=SOURCE).stored()
        assert after[bad] == before[bad]  # its stored state untouched
        assert result.removed == 0


@pytest.mark.parametrize("api_version", ["v3", "v4"])  # v4 pages are read typed
async def test_events_of_one_listing_keep_its_order(store: Redis, api_version: str) -> None:
    world = small_world(contacts=150)  # several buckets, so the store's order is not the page's
    async with replyio_runtime(world, source=SOURCE, api_version=api_version) as runtime:
        routes = (Route(destination="sink", events=("*",), sources=()),)
        await poll_source(store, runtime, routes=routes, now=now)
        for contact in range(1, 151):
            world.advance_step(100, contact)
        await poll_source(store, runtime, routes=routes, now=now)
        events = await outbox_events(store, SOURCE)
        due = await due_ids(store, SOURCE, "sink")
        order = [cast("dict[str, Any]", events[i]["data"])["enrollment_id"] for i in due]
        pages = [page async for page in runtime.source.pages() if page.records]
        listed = [replyio.enrollment_id(record, page) for page in pages for record in page.records]
        assert len(listed) == 150
        typed = [isinstance(page.records, TypedRecords) for page in pages]
        assert typed == [api_version == "v4"] * len(pages)
        assert order == listed
