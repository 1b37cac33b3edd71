"""Many sources in one worker: every source of the synthetic account polled concurrently,
bounded as `seqwatch poll` bounds it. Runs inside a measured child process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.meter import Meter
from bench.seqwatch_job import ROUTES, open_http, runtime_for, utcnow
from bench.synth import FIRST_SEQUENCE_ID
from worker.commands import POLL_CONCURRENCY
from worker.pipeline import PollResult, SourceRuntime, poll_source
from worker.redis_conn import connect


def source_name(k: int) -> str:
    return f"bench-{k:03d}"


async def poll_many(*, peer_url: str, redis_url: str, sources: int, meter: Meter) -> dict[str, Any]:
    """Source k allow-lists synthetic sequence k; all share one HTTP client, as in worker.deps."""
    redis = connect(redis_url)
    http = open_http()
    clients: list[httpx.AsyncClient] = [http]
    runtimes: list[SourceRuntime] = []
    for k in range(sources):
        sequence = str(FIRST_SEQUENCE_ID + k)  # Account.sequence_id(k)
        runtimes.append(
            runtime_for(source_name(k), peer_url=peer_url, http=http, sequences=(sequence,))
        )
    limit = asyncio.Semaphore(POLL_CONCURRENCY)

    async def one(runtime: SourceRuntime) -> PollResult:
        async with limit:
            return await poll_source(redis, runtime, routes=ROUTES, now=utcnow)

    try:
        with meter:
            results = await asyncio.gather(*(one(runtime) for runtime in runtimes))
    finally:
        for client in clients:
            await client.aclose()
        await redis.aclose()
    return {
        "sources": len(results),
        "enrollments": sum(r.enrollments for r in results),
        "events": sum(r.events for r in results),
        "pages": sum(r.pages for r in results),
        "baseline": all(r.baseline for r in results),
    }
