"""Poll outcome bookkeeping per source, and the status report (SPEC §4 `status`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from worker import keys
from worker.outbox import Outbox
from worker.redis_io import awaited


async def record_poll(
    redis: Redis,
    *,
    source: str,
    ok: bool,
    at: float,
    error: str | None = None,
    requests: int | None = None,
) -> None:
    meta = keys.meta(source)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            meta, mapping={"last_poll_at": repr(at), "last_outcome": "ok" if ok else "failed"}
        )
        if requests is not None:
            pipe.hset(meta, "last_poll_requests", str(requests))
        if ok:
            pipe.hset(meta, "last_ok_at", repr(at))
            pipe.hdel(meta, "last_error")
        else:
            pipe.hset(meta, "last_error", (error or "")[:500])
        await pipe.execute()


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    name: str
    last_poll_at: float | None
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int
    tracked: int
    events_total: int
    baseline_done: bool
    failing: bool = False
    # Provider requests the last poll sent (retries included); None before the first poll.
    last_poll_requests: int | None = None
    # The provider API version in use, where a provider has several (Reply.io v3/v4).
    api_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    name: str
    pending: int
    failing: int
    dead: int
    last_outcome: str | None
    last_success_at: float | None
    last_error: str | None = None


def _float(value: str | None) -> float | None:
    return float(value) if value else None


async def source_status(redis: Redis, name: str) -> SourceStatus:
    fields = (
        "last_poll_at", "last_outcome", "last_error", "consecutive_failures",
        "tracked", "events_total", "baseline", "health", "last_poll_requests",
    )  # fmt: skip
    values = dict(
        zip(fields, await awaited(redis.hmget(keys.meta(name), list(fields))), strict=True)
    )
    api_version = await awaited(redis.hget(keys.provider_memory(name), "api_version"))
    return SourceStatus(
        name=name,
        last_poll_at=_float(values["last_poll_at"]),
        last_outcome=values["last_outcome"],
        last_error=values["last_error"],
        consecutive_failures=int(values["consecutive_failures"] or 0),
        tracked=int(values["tracked"] or 0),
        events_total=int(values["events_total"] or 0),
        baseline_done=values["baseline"] == "1",
        failing=values["health"] == "failing",
        last_poll_requests=int(values["last_poll_requests"] or 0)
        if values["last_poll_requests"] is not None
        else None,
        api_version=api_version,
    )


async def destination_status(
    redis: Redis, name: str, *, sources: Sequence[str], now_ms: int
) -> DestinationStatus:
    pending = failing = dead = 0
    for source in sources:
        counts = await Outbox(redis, source=source, destination=name).counts(now_ms=now_ms)
        pending += counts["pending"]
        failing += counts["failing"]
        dead += counts["dead"]
    health: list[str | None] = await awaited(
        redis.hmget(
            keys.destination_health(name), ["last_outcome", "last_success_at", "last_error"]
        )
    )
    return DestinationStatus(
        name=name,
        pending=pending,
        failing=failing,
        dead=dead,
        last_outcome=health[0],
        last_success_at=_float(health[1]),
        last_error=health[2],
    )
