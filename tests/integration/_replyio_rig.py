"""A Reply.io fake plus the real source on it, for pipeline tests against a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import orjson
from redis.asyncio import Redis

from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.replyio import ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.replyio import ReplyioSource
from worker.store import keys

API_KEY = "rk-rig-0a1b2c3d4e5f"


def now() -> datetime:
    return datetime.now(UTC)


def small_world(contacts: int = 5) -> ReplyioWorld:
    world = ReplyioWorld()
    world.add_sequence(100, "First", steps=5)
    for contact in range(1, contacts + 1):
        world.add_contact(100, contact, email=f"c{contact}@example.com", first="C")
    return world


@asynccontextmanager
async def replyio_runtime(
    world: ReplyioWorld,
    *,
    source: str,
    faults: FaultPlan | None = None,
    page_size: int = 100,
    api_version: str = "auto",
) -> AsyncIterator[SourceRuntime]:
    faults = faults or FaultPlan()
    fake = FakeServer(ReplyioApp(world, api_key=API_KEY, faults=faults))
    fake.start()
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            client = ProviderClient(
                source=source,
                http=http,
                base_url=fake.base_url,
                headers={"X-API-Key": API_KEY},
                limiter=PacingLimiter(per_second=10_000),
                max_attempts=1,
            )
            yield SourceRuntime(
                name=source,
                provider="replyio",
                source=ReplyioSource(
                    name=source,
                    client=client,
                    sequences=(),
                    page_size=page_size,
                    api_version=api_version,
                ),
                normalize=NORMALIZERS["replyio"],
            )
    finally:
        faults.wake()
        fake.stop()


async def outbox_events(store: Redis, source: str) -> dict[str, dict[str, object]]:
    """Event id -> document of every event in the source's outbox."""
    bodies: dict[str, str] = await store.hgetall(keys.events(source))  # type: ignore[misc]
    return {event_id: orjson.loads(body) for event_id, body in bodies.items()}


async def due_ids(store: Redis, source: str, destination: str) -> list[str]:
    found: list[str] = await store.zrange(keys.due(source, destination), 0, -1)
    return found
