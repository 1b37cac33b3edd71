"""arq jobs (tick, poll, deliver) and the daemon's worker settings.

The cron `tick` takes no arguments (arq cron jobs cannot): it fans out one poll job per due
source and one delivery job per destination, with deterministic job ids so several workers
sharing one Redis enqueue each job once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Retry, Worker, func

from config.settings import Settings
from worker.deps import Deps, open_deps
from worker.errors import SourceError, SourceRejected
from worker.pipeline import LeaseBusy
from worker.service import run_deliver, run_poll

log = structlog.get_logger("seqwatch.jobs")
TICK_SECONDS = 5
RETRY_TRIES = 3
QUEUE = "seqwatch:queue"


def _deps(ctx: dict[str, Any]) -> Deps:
    deps: Deps = ctx["deps"]
    return deps


async def tick(ctx: dict[str, Any]) -> None:
    deps = _deps(ctx)
    now = time.time()
    for name, interval in deps.poll_intervals.items():
        slot = int(now // interval)
        await ctx["redis"].enqueue_job(
            "poll", name, _job_id=f"poll:{name}:{slot}", _queue_name=QUEUE
        )
    slot = int(now // TICK_SECONDS)
    for name in deps.destinations:
        await ctx["redis"].enqueue_job(
            "deliver", name, _job_id=f"deliver:{name}:{slot}", _queue_name=QUEUE
        )


async def poll(ctx: dict[str, Any], name: str) -> str:
    deps = _deps(ctx)
    try:
        result = await run_poll(deps, name)
    except LeaseBusy:
        return "busy"
    except SourceRejected:
        return "rejected"  # credentials or config: retrying before the next slot cannot help
    except SourceError as exc:
        if ctx.get("job_try", 1) < RETRY_TRIES:
            raise Retry(defer=min(60.0, deps.poll_intervals[name] / 2)) from exc
        return "failed"
    return f"{result.events} events"


async def deliver(ctx: dict[str, Any], name: str) -> str:
    result = await run_deliver(_deps(ctx), name)
    return f"{result.delivered} delivered"


def build_worker(settings: Settings, *, redis_url: str) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["deps"] = open_deps(settings, redis_url=redis_url)
        log.info(
            "worker_started", sources=len(settings.sources), destinations=len(settings.destinations)
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        deps: Deps | None = ctx.get("deps")
        if deps is not None:
            await deps.aclose()
        log.info("worker_stopped")

    return Worker(
        # A poll's job id names its interval slot; the result must outlive the slot or a later
        # tick in the same slot would enqueue the poll again.
        functions=[
            func(poll, keep_result=max(s.poll_interval for s in settings.sources) + 60),
            func(deliver, keep_result=60),
        ],
        cron_jobs=[cron(tick, second=set(range(0, 60, TICK_SECONDS)), run_at_startup=True)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=QUEUE,
        on_startup=startup,
        on_shutdown=shutdown,
        max_tries=RETRY_TRIES,
        job_timeout=3600,
        keep_result=60,
        job_completion_wait=20,  # SIGTERM: stop taking jobs, let running ones finish
        log_results=False,
    )


async def run_daemon(settings: Settings, *, redis_url: str) -> None:
    worker = build_worker(settings, redis_url=redis_url)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass  # arq cancels its main task on SIGTERM/SIGINT once running jobs are done
    finally:
        await worker.close()
