"""A quarantined record leaves the quarantine when it normalizes again or leaves the provider."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.integration._replyio_rig import now, replyio_runtime, small_world
from worker.demo.fakes.faults import FaultKind, FaultPlan
from worker.detect.pipeline import poll_source
from worker.ops.status import source_status
from worker.store import keys

SOURCE = "quarantine-src"


async def test_a_quarantined_record_that_disappears_is_no_longer_counted(store: Redis) -> None:
    world, faults = small_world(), FaultPlan()
    async with replyio_runtime(world, source=SOURCE, faults=faults) as runtime:
        await poll_source(store, runtime, routes=(), now=now)
        faults.add(FaultKind.MISSING_FIELD, field="statusInSequence", path_contains="/contacts")
        await poll_source(store, runtime, routes=(), now=now)
        status = await source_status(store, SOURCE)
        assert status.quarantined == 1
        assert status.quarantine_error is not None
        assert status.quarantine_error["enrollment_id"] == "100:1"

        world.remove_contact(100, 1)
        result = await poll_source(store, runtime, routes=(), now=now)
        assert result.quarantined == 0
        status = await source_status(store, SOURCE)
        assert (status.quarantined, status.quarantine_error) == (0, None)
        assert await store.hlen(keys.quarantine(SOURCE)) == 0  # type: ignore[misc]
