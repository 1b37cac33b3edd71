"""Redis data loss and rollback: announced, and never a reused event id (issue 9, cases 1, 3).

The server here persists (AOF) so it can be taken away: restarted empty (a server without
persistence coming back), flushed, or restored to an earlier AOF copy. The same SourceRuntime
object plays one long-running daemon: it remembers what it last committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from tests.integration._redis_proc import RedisProcess
from tests.integration._replyio_rig import (
    due_ids,
    now,
    outbox_events,
    replyio_runtime,
    small_world,
)
from worker.delivery.outbox import Route
from worker.demo.fakes.replyio import ContactStatus, ReplyioWorld
from worker.detect import continuity
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.ops.status import source_status
from worker.store import keys
from worker.store.redis_conn import connect
from worker.store.state import StateStore

SOURCE = "loss-src"
ROUTES = (
    Route(destination="all", events=("*",), sources=()),
    Route(destination="ops", events=("source.state_lost",), sources=()),
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis", appendfsync="always").start()
    yield proc
    proc.close()


@pytest.fixture
async def store(server: RedisProcess) -> AsyncIterator[Redis]:
    client = connect(server.url)
    yield client
    await client.aclose()


@pytest.fixture
def world() -> ReplyioWorld:
    return small_world()


@pytest.fixture
async def runtime(world: ReplyioWorld) -> AsyncIterator[SourceRuntime]:
    async with replyio_runtime(world, source=SOURCE) as rt:
        yield rt


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=now)


async def lose_everything(how: str, server: RedisProcess, store: Redis) -> None:
    if how == "flushall":
        await store.flushall()
        return
    server.kill()
    server.start_empty()
    await store.connection_pool.disconnect()


@pytest.mark.parametrize("how", ["flushall", "restart_empty"])
async def test_after_data_loss_no_id_is_reused_and_the_loss_is_announced(
    how: str, server: RedisProcess, store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)  # baseline
    issued: set[str] = set()
    for status in (ContactStatus.PAUSED, ContactStatus.ACTIVE):
        world.set_status(100, 2, status)
        issued |= set((await poll(store, runtime)).event_ids)
    assert len(issued) == 2

    await lose_everything(how, server, store)
    with capture_logs() as logs:
        rebaseline = await poll(store, runtime)
    assert rebaseline.baseline
    assert rebaseline.state_lost == "vanished"
    assert rebaseline.events == 0  # the re-baseline itself is silent
    [lost] = [e for e in logs if e["event"] == "source_state_lost"]
    assert (lost["log_level"], lost["source"], lost["reason"]) == ("error", SOURCE, "vanished")
    # The notice goes to the destination that asked for it, never to "*".
    [notice_id] = await due_ids(store, SOURCE, "ops")
    assert await due_ids(store, SOURCE, "all") == []
    notice = (await outbox_events(store, SOURCE))[notice_id]
    assert notice["type"] == "source.state_lost"
    assert notice["data"]["reason"] == "vanished"  # type: ignore[index]

    # Paused, resumed, paused again after the loss: a new change, so a new id.
    for status in (ContactStatus.PAUSED, ContactStatus.ACTIVE, ContactStatus.PAUSED):
        world.set_status(100, 2, status)
        [event_id] = (await poll(store, runtime)).event_ids
        assert event_id not in issued
        issued.add(event_id)
    assert (await poll(store, runtime)).state_lost is None  # announced once


async def test_status_shows_the_loss_until_the_next_baseline_completes(
    server: RedisProcess, store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    await store.flushall()
    # The daemon's tick notices first (service.check_continuity calls this for every source).
    reason = await continuity.verify(
        store, source=SOURCE, provider="replyio", memory=runtime.memory, routes=ROUTES, now=now()
    )
    assert reason == "vanished"
    status = await source_status(store, SOURCE)
    assert status.state_lost is not None
    assert status.state_lost["reason"] == "vanished"
    assert len(await due_ids(store, SOURCE, "ops")) == 1
    # Polling announces nothing twice; its baseline completing clears the status.
    result = await poll(store, runtime)
    assert (result.baseline, result.state_lost) == (True, None)
    assert (await source_status(store, SOURCE)).state_lost is None
    assert len(await due_ids(store, SOURCE, "ops")) == 1


async def test_state_older_than_committed_is_announced_as_a_rollback(
    server: RedisProcess,
    store: Redis,
    world: ReplyioWorld,
    runtime: SourceRuntime,
    tmp_path: Path,
) -> None:
    await poll(store, runtime)
    copy = tmp_path / "aof-copy"
    server.snapshot_aof(copy)
    world.advance_step(100, 1)
    [first] = (await poll(store, runtime)).event_ids

    server.kill()
    server.restore_aof(copy)
    server.start()
    await store.connection_pool.disconnect()
    again = await poll(store, runtime)
    assert again.state_lost == "rolled_back"
    assert again.event_ids == [first]  # re-detected under its id
    [notice_id] = await due_ids(store, SOURCE, "ops")
    notice = (await outbox_events(store, SOURCE))[notice_id]
    assert notice["data"]["reason"] == "rolled_back"  # type: ignore[index]
    assert (await poll(store, runtime)).state_lost is None


async def test_a_reset_is_not_a_loss(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    world.advance_step(100, 1)
    [before_reset] = (await poll(store, runtime)).event_ids
    await StateStore(store, source=SOURCE).reset()
    with capture_logs() as logs:
        result = await poll(store, runtime)
    assert (result.baseline, result.state_lost) == (True, None)
    assert not [e for e in logs if e["event"] == "source_state_lost"]
    assert await due_ids(store, SOURCE, "ops") == []
    world.advance_step(100, 1, by=-1)
    await poll(store, runtime)  # stale step: stored, silent
    world.advance_step(100, 1)
    assert (await poll(store, runtime)).event_ids == []  # not above the high-water mark (2)
    world.advance_step(100, 1)
    [after_reset] = (await poll(store, runtime)).event_ids
    assert after_reset != before_reset


async def test_another_process_that_never_saw_the_source_stays_quiet(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll(store, runtime)
    await store.flushall()
    async with replyio_runtime(world, source=SOURCE) as fresh:  # knows nothing to compare
        result = await poll(store, fresh)
    assert (result.baseline, result.state_lost) == (True, None)
    assert await store.hget(keys.meta(SOURCE), "state_lost") is None  # type: ignore[misc]
