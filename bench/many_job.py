"""Many sources in one worker, polled as `seqwatch run` polls them: `open_deps` builds the
sources from settings (shared HTTP client, shared Redis rate limiter), and the arq job function
`worker.app.jobs.poll` runs for each, at most `[worker] max_jobs` at a time, with its log line
rendered as the daemon renders it. Runs inside a measured child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from bench.delivery import SECRET
from bench.meter import Meter
from bench.synth import ACCOUNT_KEY_PREFIX, FIRST_SEQUENCE_ID
from config.settings import (
    DestinationSettings,
    DestinationType,
    RedisSettings,
    Secret,
    Settings,
    SourceSettings,
    WorkerSettings,
)
from worker.app import logs
from worker.app.deps import Deps, open_deps
from worker.app.jobs import QUEUE, build_worker, poll
from worker.store import keys

# The shared limiter still runs (a Redis round trip per request) but never waits on the fake.
UNPACED_PER_MINUTE = 1e9


def source_name(k: int) -> str:
    return f"bench-{k:04d}"


def many_settings(*, peer_url: str, redis_url: str, sources: int, max_jobs: int) -> Settings:
    """Source k is the account of synthetic sequence k (and allow-lists it, so a shared-account
    fake would serve it the same records); one webhook destination takes every event."""
    return Settings(
        redis=RedisSettings(url=Secret(redis_url), data_dir=Path(".")),
        sources=tuple(
            SourceSettings(
                name=source_name(k),
                provider="replyio",
                api_key=Secret(f"{ACCOUNT_KEY_PREFIX}{k}"),  # an account of its own
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
    *, peer_url: str, redis_url: str, sources: int, max_jobs: int, meter: Meter, arq: bool = False
) -> dict[str, Any]:
    """With `arq`, a real arq worker (worker.app.jobs.build_worker, as `seqwatch run` starts it)
    polls every source once: its tick claims and enqueues them, arq runs the jobs; otherwise
    the job function runs directly, `max_jobs` at a time (no queue, no arq bookkeeping)."""
    settings = many_settings(
        peer_url=peer_url, redis_url=redis_url, sources=sources, max_jobs=max_jobs
    )
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 (opened once, before measuring)
        # One JSON line per poll, every configured secret redacted from it: as `seqwatch run`.
        logs.configure(
            secrets=logs.configured_secrets(settings), level="INFO", stream=sink, json=True
        )
        deps = open_deps(settings, redis_url=redis_url)
        try:
            started = time.time()
            with meter:
                if arq:
                    await _through_arq(settings, redis_url, deps)
                else:
                    await _through_job_function(deps, max_jobs)
            async with deps.redis.pipeline(transaction=False) as pipe:
                for name in deps.sources:
                    pipe.hmget(keys.meta(name), ["tracked", "last_outcome", "last_poll_at"])
                rows = await pipe.execute()
            events = await deps.redis.zcard(keys.due(source_name(0), "bench-hook"))
        finally:
            await deps.aclose()
    polled = [r for r in rows if r[2] is not None and float(r[2]) >= started]
    return {
        "sources": len(rows),
        "ok": sum(r[1] == "ok" for r in polled),
        "enrollments": sum(int(r[0] or 0) for r in rows),
        "events": int(events),
        "max_jobs": max_jobs,
        "arq": arq,
    }


async def _through_job_function(deps: Deps, max_jobs: int) -> None:
    ctx: dict[str, Any] = {"deps": deps, "job_try": 1}
    limit = asyncio.Semaphore(max_jobs)

    async def one(name: str) -> str:
        async with limit:
            return await poll(ctx, name)

    await asyncio.gather(*(one(name) for name in deps.sources))


async def _through_arq(settings: Settings, redis_url: str, deps: Deps) -> None:
    """Until the first tick's jobs are all done: nothing is queued or running after it."""
    ticked = asyncio.Event()
    worker = build_worker(settings, redis_url=redis_url, deps=deps, on_tick=ticked.set)
    running = asyncio.create_task(worker.async_run())
    try:
        while True:
            await asyncio.sleep(0.1)
            if running.done():
                running.result()  # the worker failed: raise it
            busy = any(not t.done() for t in worker.tasks.values())
            if ticked.is_set() and not busy and not await deps.redis.zcard(QUEUE):
                break
    finally:
        await worker.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
