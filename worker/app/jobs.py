"""arq jobs (tick, poll, deliver) and the daemon's worker settings.

The cron `tick` takes no arguments (arq cron jobs cannot): it fans out the due sources in poll
jobs of up to POLL_GROUP sources each (`poll_group`; arq's own bookkeeping, about a millisecond
of CPU per job, is then paid once per group, not once per poll) and one delivery job per
destination. A group polls its sources concurrently, each under its own lease with its own
outcome; a source whose poll fails is retried alone, as a `poll` job. Polls in flight are
bounded by `[worker] max_jobs` whatever jobs carry them. When a source is due is kept in Redis
(keys.schedule): a worker claims a due source atomically and sets its next due time, one
`poll_interval` later with a small jitter so sources started together spread out; a starting
worker makes every source due at once. Delivery jobs have deterministic ids, so several
workers sharing one Redis enqueue each once. Jobs end quietly when Redis or the lease is lost: the
daemon (worker/app/daemon.py) reports the outage once, and the next slot's job does the work.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
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
from worker.app.deps import Deps
from worker.app.service import check_continuity, run_deliver, run_poll
from worker.detect.pipeline import LeaseBusy
from worker.errors import LeaseLost, SourceError, SourceRejected, StoreError
from worker.store import keys

log = structlog.get_logger("seqwatch.jobs")
TICK_SECONDS = 5
RETRY_TRIES = 3
QUEUE = "seqwatch:queue"
# Sources per poll job: enough to make arq's per-job cost small beside the polls', few enough
# that several workers sharing one Redis still share the polls out.
POLL_GROUP = 10
QUEUE_POLL_S = 0.1
JOB_COMPLETION_WAIT = 20  # SIGTERM: stop taking jobs, let running ones finish this long
# Queued jobs older than this are dropped (see prune_stale_jobs).
STALE_JOB_S = 120
# A Slack digest goes out once no event has come due for this long (the next tick sends it):
# the polls of one tick commit moments apart, and their events belong in one message.
DIGEST_SETTLE_S = 2.0


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


JITTER_FRACTION = 0.1
JITTER_CAP_S = 30.0
# Claims the due sources of (name, next due) pairs after ARGV[1] = now, in one call for every
# source: sets a source's next due time only if it is due now (or never scheduled); returns the
# names claimed.
_CLAIM = """
local now = tonumber(ARGV[1])
local claimed = {}
for i = 2, #ARGV, 2 do
  local due = redis.call('HGET', KEYS[1], ARGV[i])
  if not due or tonumber(due) <= now then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    claimed[#claimed + 1] = ARGV[i]
  end
end
return claimed
"""


def next_due(*, now: float, interval: float, rng: random.Random) -> float:
    """One interval from now, give or take 10% (at most 30 s): many sources spread out."""
    spread = min(interval * JITTER_FRACTION, JITTER_CAP_S)
    return now + interval + rng.uniform(-spread, spread)


async def make_all_due(redis: Redis, sources: list[str]) -> None:
    """A starting worker polls every source now rather than waiting for its next slot."""
    if sources:
        await redis.hset(keys.schedule(), mapping=dict.fromkeys(sources, "0"))  # type: ignore[misc]


async def tick(ctx: dict[str, Any]) -> None:
    deps = _deps(ctx)
    now = time.time()
    try:
        await check_continuity(deps)
        await _enqueue_due(ctx, deps, now=now)
    except RedisError as exc:
        log.warning("tick_skipped", error=type(exc).__name__)
        return
    on_tick: Callable[[], None] | None = ctx.get("on_tick")
    if on_tick is not None:
        on_tick()


def groups(names: list[str], *, size: int = 0) -> list[list[str]]:
    """`names` in consecutive groups of at most `size` (POLL_GROUP by default)."""
    size = size or POLL_GROUP
    return [names[i : i + size] for i in range(0, len(names), size)]


async def _enqueue_due(ctx: dict[str, Any], deps: Deps, *, now: float) -> None:
    rng: random.Random = ctx.setdefault("rng", random.Random())
    redis = ctx["redis"]
    pairs: list[str] = []
    for name, interval in deps.poll_intervals.items():
        pairs += (name, repr(next_due(now=now, interval=interval, rng=rng)))
    claimed: list[str | bytes] = await redis.eval(_CLAIM, 1, keys.schedule(), repr(now), *pairs)
    names = [raw.decode() if isinstance(raw, bytes) else raw for raw in claimed]
    stamp = int(now * 1000)
    for group in groups(names):
        if len(group) == 1:
            await redis.enqueue_job(
                "poll", group[0], _job_id=f"poll:{group[0]}:{stamp}", _queue_name=QUEUE
            )
        else:  # named after its first source: claims are exclusive, so ids never collide
            await redis.enqueue_job(
                "poll_group", group, _job_id=f"polls:{group[0]}:{stamp}", _queue_name=QUEUE
            )
    slot = int(now // TICK_SECONDS)
    for name in deps.destinations:
        await ctx["redis"].enqueue_job(
            "deliver", name, _job_id=f"deliver:{name}:{slot}", _queue_name=QUEUE
        )


def _poll_slots(ctx: dict[str, Any]) -> asyncio.Semaphore:
    """Polls in flight in this worker, whatever job runs them: at most [worker] max_jobs."""
    slots: asyncio.Semaphore | None = ctx.get("poll_slots")
    if slots is None:  # a caller other than build_worker's arq worker (the bench, tests)
        slots = ctx["poll_slots"] = asyncio.Semaphore(_deps(ctx).max_polls)
    return slots


async def poll(ctx: dict[str, Any], name: str, tried: int = 0) -> str:
    """One source. `tried`: attempts it already had in a group (a retry counts them)."""
    async with _poll_slots(ctx):
        return await _poll(ctx, name, tried=tried)


async def poll_group(ctx: dict[str, Any], names: list[str]) -> str:
    """Several sources at once, each as its own `poll` would (its lease, log line, outcome);
    one's failure neither delays nor fails the others: a source to retry is enqueued alone.
    Once the daemon is stopping, polls not yet started are handed back to the queue, each as
    its own job, for whichever worker runs next (running ones finish)."""
    deps = _deps(ctx)

    async def one(name: str) -> str:
        async with _poll_slots(ctx):
            if deps.stopping.is_set():
                return await _requeue(ctx, name, tried=0, defer=0.0, outcome="handed back")
            try:
                return await _poll({**ctx, "job_try": 1}, name, tried=0)
            except Retry as retry:
                defer = (retry.defer_score or 0) / 1000
                return await _requeue(ctx, name, tried=1, defer=defer, outcome="retrying")
            except Exception as exc:  # a bug in one poll must not end the others
                log.exception("poll_crashed", source=name, error=type(exc).__name__)
                return "crashed"

    outcomes = await asyncio.gather(*(one(name) for name in names))
    return ", ".join(f"{name}: {outcome}" for name, outcome in zip(names, outcomes, strict=True))


async def _requeue(
    ctx: dict[str, Any], name: str, *, tried: int, defer: float, outcome: str
) -> str:
    """`name` as a `poll` job of its own (`tried`: the attempts it already had)."""
    try:
        await ctx["redis"].enqueue_job(
            "poll", name, tried, _job_id=f"poll:{name}:{int(time.time() * 1000)}:{tried}",
            _queue_name=QUEUE, _defer_by=defer or None,
        )  # fmt: skip
    except RedisError as exc:  # the source's next slot polls it
        log.warning("poll_not_requeued", source=name, error=type(exc).__name__)
        return "not requeued"
    return outcome


async def _poll(ctx: dict[str, Any], name: str, *, tried: int) -> str:
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
        if tried + ctx.get("job_try", 1) < RETRY_TRIES:
            raise Retry(defer=min(60.0, deps.poll_intervals[name] / 2)) from exc
        return "failed"
    return f"{result.events} events"


async def deliver(ctx: dict[str, Any], name: str) -> str:
    try:
        result = await run_deliver(_deps(ctx), name, settle_s=DIGEST_SETTLE_S)
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
    on_tick: Callable[[], None] | None = None,
) -> Worker:
    """An arq worker on `deps`, for worker/app/daemon.py: the daemon owns `deps` (they outlive the
    worker across Redis outages) and the signal handlers (they must work between workers too)."""

    async def startup(ctx: dict[str, Any]) -> None:
        await make_all_due(ctx["redis"], [s.name for s in settings.sources])
        if on_started is not None:
            await on_started()
        log.info(
            "worker_started", sources=len(settings.sources), destinations=len(settings.destinations)
        )

    redis_settings = RedisSettings.from_dsn(redis_url)
    redis_settings.conn_retries = 0  # the daemon backs off and logs; arq would retry noisily
    return Worker(
        functions=[
            func(poll, keep_result=60),
            func(poll_group, keep_result=60),
            func(deliver, keep_result=60),
        ],
        cron_jobs=[cron(tick, second=set(range(0, 60, TICK_SECONDS)), run_at_startup=True)],
        redis_settings=redis_settings,
        queue_name=QUEUE,
        # arq hands each job a copy of ctx: the semaphore object itself is what they share.
        ctx={
            "deps": deps,
            "on_tick": on_tick,
            "poll_slots": asyncio.Semaphore(settings.worker.max_jobs),
        },
        on_startup=startup,
        max_tries=RETRY_TRIES,
        # Polls mostly wait on the provider and Redis: [worker] max_jobs of them run at once.
        max_jobs=settings.worker.max_jobs,
        job_timeout=3600,
        # arq starts queued jobs only when it looks at the queue (every 0.5 s by default): a
        # group of small polls ends in milliseconds and its slot then sat idle until the next
        # look. 10 looks a second (a ZRANGEBYSCORE each) keep the slots busy.
        poll_delay=QUEUE_POLL_S,
        keep_result=60,
        handle_signals=False,
        job_completion_wait=JOB_COMPLETION_WAIT,
        log_results=False,
        # Per worker: arq's shared key would be deleted by whichever worker stops first.
        health_check_key=keys.worker_health(worker_id()),
        health_check_interval=HEALTH_EVERY_S,
    )


HEALTH_EVERY_S = 10


def worker_id() -> str:
    """host-pid-random: unique per worker, readable in `status`."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
