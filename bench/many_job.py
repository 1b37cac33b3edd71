"""Many sources in one worker, polled as `seqwatch run` polls them: `open_deps` builds the
sources from settings (shared HTTP client, shared Redis rate limiter), and the arq job function
`worker.jobs.poll` runs for each, at most `[worker] max_jobs` at a time, with its log line
rendered as the daemon renders it. Runs inside a measured child process."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

from bench.delivery import SECRET
from bench.meter import Meter
from bench.synth import API_KEY, FIRST_SEQUENCE_ID
from config.settings import (
    DestinationSettings,
    DestinationType,
    RedisSettings,
    Secret,
    Settings,
    SourceSettings,
    WorkerSettings,
)
from worker import keys, logs
from worker.deps import open_deps
from worker.jobs import poll

# The shared limiter still runs (a Redis round trip per request) but never waits on the fake.
UNPACED_PER_MINUTE = 1e9


def source_name(k: int) -> str:
    return f"bench-{k:04d}"


def many_settings(*, peer_url: str, redis_url: str, sources: int, max_jobs: int) -> Settings:
    """Source k allow-lists synthetic sequence k; one webhook destination takes every event."""
    return Settings(
        redis=RedisSettings(url=Secret(redis_url), data_dir=Path(".")),
        sources=tuple(
            SourceSettings(
                name=source_name(k),
                provider="replyio",
                api_key=Secret(API_KEY),
                base_url=peer_url,
                sequences=(str(FIRST_SEQUENCE_ID + k),),  # Account.sequence_id(k)
                requests_per_minute=UNPACED_PER_MINUTE,
                api_version="v4",  # the synthetic peer serves the v4 shape
            )
            for k in range(sources)
        ),
        destinations=(
            DestinationSettings(
                name="bench-hook",
                type=DestinationType.WEBHOOK,
                url=Secret(peer_url + "/hook"),
                secrets=(Secret(SECRET),),
                allow_private_network=True,
            ),
        ),
        config_path=Path("bench.toml"),
        worker=WorkerSettings(max_jobs=max_jobs),
    )


async def poll_many(
    *, peer_url: str, redis_url: str, sources: int, max_jobs: int, meter: Meter
) -> dict[str, Any]:
    settings = many_settings(
        peer_url=peer_url, redis_url=redis_url, sources=sources, max_jobs=max_jobs
    )
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 (opened once, before measuring)
        logs.configure(level="INFO", stream=sink, json=True)  # one JSON line per poll, as run
        deps = open_deps(settings, redis_url=redis_url)
        ctx: dict[str, Any] = {"deps": deps, "job_try": 1}
        limit = asyncio.Semaphore(settings.worker.max_jobs)

        async def one(name: str) -> str:
            async with limit:
                return await poll(ctx, name)

        try:
            with meter:
                outcomes = await asyncio.gather(*(one(name) for name in deps.sources))
            async with deps.redis.pipeline(transaction=False) as pipe:
                for name in deps.sources:
                    pipe.hget(keys.meta(name), "tracked")
                tracked = await pipe.execute()
        finally:
            await deps.aclose()
    kinds = Counter("ok" if o.endswith(" events") else o for o in outcomes)
    return {
        "sources": len(outcomes),
        "ok": kinds["ok"],
        "outcomes": dict(kinds),
        "enrollments": sum(int(t or 0) for t in tracked),
        "events": sum(int(o.split()[0]) for o in outcomes if o.endswith(" events")),
        "max_jobs": max_jobs,
    }
