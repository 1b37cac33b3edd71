"""arq jobs (tick, poll, deliver) and the daemon's worker settings.

The cron `tick` takes no arguments (arq cron jobs cannot): it fans out one poll job per due
source and one delivery job per destination, with deterministic job ids so several workers
sharing one Redis enqueue each job once. Jobs end quietly when Redis or the lease is lost: the
daemon (worker/daemon.py) reports the outage once, and the next slot's job does the work.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Retry, Worker, func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import Settings
from worker.deps import Deps
from worker.errors import LeaseLost, SourceError, SourceRejected, StoreError
from worker.pipeline import LeaseBusy
from worker.service import check_continuity, run_deliver, run_poll

log = structlog.get_logger("seqwatch.jobs")
TICK_SECONDS = 5
RETRY_TRIES = 3
QUEUE = "seqwatch:queue"
JOB_COMPLETION_WAIT = 20  # SIGTERM: stop taking jobs, let running ones finish this long
# Queued jobs older than this are dropped (see prune_stale_jobs).
STALE_JOB_S = 120


def _deps(ctx: dict[str, Any]) -> Deps:
    deps: Deps = ctx["deps"]
    return deps


async def prune_stale_jobs(redis: Redis, *, now: float) -> int:
    """Drop queued jobs older than STALE_JOB_S; returns how many.

    They are mostly jobs whose worker was killed mid-run: arq keeps those "in progress" (and so
    never runs them) for job_timeout, and it reads only the head of the queue, so enough of
    them would hide every newer job from every worker. Dropping one is harmless: jobs are per
    slot and the next tick enqueues fresh ones; a job still running is only taken off the
    queue, which arq does itself when it ends.
    """
    dropped: int = await redis.zremrangebyscore(QUEUE, "-inf", int((now - STALE_JOB_S) * 1000))
    return dropped


async def tick(ctx: dict[str, Any]) -> None:
    deps = _deps(ctx)
    now = time.time()
    try:
        await check_continuity(deps)
        await _enqueue_due(ctx, deps, now=now)
    except RedisError as exc:
        log.warning("tick_skipped", error=type(exc).__name__)


async def _enqueue_due(ctx: dict[str, Any], deps: Deps, *, now: float) -> None:
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
    except LeaseLost:
        # Our lease expired (e.g. Redis was away) and another worker may poll now; nothing past
        # the refused commit was written.
        log.warning("poll_abandoned", source=name, reason="lease lost")
        return "lease lost"
    except (StoreError, RedisError) as exc:
        log.warning(
            "poll_abandoned", source=name, reason="redis unavailable", error=type(exc).__name__
        )
        return "redis unavailable"
    except SourceRejected:
        return "rejected"  # credentials or config: retrying before the next slot cannot help
    except SourceError as exc:
        if ctx.get("job_try", 1) < RETRY_TRIES:
            raise Retry(defer=min(60.0, deps.poll_intervals[name] / 2)) from exc
        return "failed"
    return f"{result.events} events"


async def deliver(ctx: dict[str, Any], name: str) -> str:
    try:
        result = await run_deliver(_deps(ctx), name)
    except (StoreError, RedisError) as exc:
        log.warning("deliver_abandoned", destination=name, error=type(exc).__name__)
        return "redis unavailable"
    return f"{result.delivered} delivered"


def build_worker(
    settings: Settings,
    *,
    redis_url: str,
    deps: Deps,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> Worker:
    """An arq worker on `deps`, for worker/daemon.py: the daemon owns `deps` (they outlive the
    worker across Redis outages) and the signal handlers (they must work between workers too)."""

    async def startup(ctx: dict[str, Any]) -> None:
        if on_started is not None:
            await on_started()
        log.info(
            "worker_started", sources=len(settings.sources), destinations=len(settings.destinations)
        )

    redis_settings = RedisSettings.from_dsn(redis_url)
    redis_settings.conn_retries = 0  # the daemon backs off and logs; arq would retry noisily
    return Worker(
        # A poll's job id names its interval slot; the result must outlive the slot or a later
        # tick in the same slot would enqueue the poll again.
        functions=[
            func(poll, keep_result=max(s.poll_interval for s in settings.sources) + 60),
            func(deliver, keep_result=60),
        ],
        cron_jobs=[cron(tick, second=set(range(0, 60, TICK_SECONDS)), run_at_startup=True)],
        redis_settings=redis_settings,
        queue_name=QUEUE,
        ctx={"deps": deps},
        on_startup=startup,
        max_tries=RETRY_TRIES,
        job_timeout=3600,
        keep_result=60,
        handle_signals=False,
        job_completion_wait=JOB_COMPLETION_WAIT,
        log_results=False,
    )
