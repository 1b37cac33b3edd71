"""`seqwatch run`: keep the arq worker going across Redis outages.

arq's worker loop ends at the first Redis error. Here it is run again once Redis answers, after
a bounded exponential backoff; the outage and the recovery are logged once each. SIGTERM/SIGINT
still stop the daemon promptly, whether a worker is running or we are waiting for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import Settings
from worker.app.deps import Deps, open_deps
from worker.errors import SeqwatchError
from worker.ops.probes import Probes

if TYPE_CHECKING:
    from worker.ops.metrics_http import MetricsServer
from worker.app.jobs import JOB_COMPLETION_WAIT, TICK_SECONDS, build_worker, prune_stale_jobs

log = structlog.get_logger("seqwatch.daemon")
# What a lost or refused Redis connection surfaces as, from arq or from redis-py.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
PRUNE_EVERY_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before reconnect attempt n (1-based): first * factor**(n-1), at most `cap`."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * self.factor ** max(0, attempt - 1))


@dataclass(slots=True)
class _Outage:
    """Redis availability as the daemon last saw it; logs only when it changes."""

    failures: int = 0
    since: float = 0.0

    def failed(self, exc: BaseException, *, retry_in: float) -> None:
        self.failures += 1
        if self.failures == 1:
            self.since = time.monotonic()
            log.error("redis_unavailable", error=type(exc).__name__, retry_in_s=retry_in)

    def recovered(self) -> None:
        if self.failures:
            log.info(
                "redis_available",
                attempts=self.failures,
                down_s=round(time.monotonic() - self.since, 1),
            )
        self.failures = 0


async def _close(worker: Worker) -> None:
    """What Worker.close does, without needing Redis: let running jobs end, drop the pool."""
    tasks = list(worker.tasks.values())
    running = [t for t in tasks if not t.done()]
    if running:
        _, late = await asyncio.wait(running, timeout=JOB_COMPLETION_WAIT)
        for task in late:
            task.cancel()
    # Collect every outcome: a job whose own bookkeeping hit the outage ends with a RedisError.
    await asyncio.gather(*tasks, return_exceptions=True)
    pool = worker._pool  # None when Redis never answered
    if pool is None:
        return
    with contextlib.suppress(*REDIS_DOWN):
        await pool.delete(worker.health_check_key)
    with contextlib.suppress(*REDIS_DOWN):
        await pool.close(close_connection_pool=True)
    worker._pool = None


async def _prune_forever(redis: Redis) -> None:
    """Outside arq's queue on purpose: a starved queue would never run a pruning job."""
    while True:
        with contextlib.suppress(*REDIS_DOWN):
            dropped = await prune_stale_jobs(redis, now=time.time())
            if dropped:
                log.info("stale_jobs_dropped", jobs=dropped)
        await asyncio.sleep(PRUNE_EVERY_S)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _metrics_server(settings: Settings, deps: Deps, probes: Probes) -> MetricsServer | None:
    if settings.metrics is None:
        return None
    from worker.ops.metrics_http import MetricsServer  # prometheus_client only when asked for

    server = MetricsServer(
        redis=deps.redis, sources=list(deps.sources), destinations=list(deps.destinations),
        probes=probes,
    )  # fmt: skip
    try:
        await server.start(settings.metrics.host, settings.metrics.port)
    except OSError as exc:  # taken port, unknown host: one line, exit 1
        where = f"{settings.metrics.host}:{settings.metrics.port}"
        raise SeqwatchError(f"metrics: cannot listen on {where} ({exc.strerror or exc})") from None
    return server


async def run_daemon(settings: Settings, *, redis_url: str, backoff: Backoff | None = None) -> None:
    """Run until SIGTERM/SIGINT; a Redis outage pauses the worker, never ends the process."""
    backoff = backoff or Backoff()
    deps = open_deps(settings, redis_url=redis_url)
    stop = asyncio.Event()
    outage = _Outage()
    current: Worker | None = None
    # Ready while a worker runs and its scheduling tick keeps coming.
    probes = Probes(stale_after_s=6 * TICK_SECONDS)
    try:
        metrics_server = await _metrics_server(settings, deps, probes)
    except SeqwatchError:
        await deps.aclose()
        raise

    def on_signal(signum: signal.Signals) -> None:
        stop.set()  # no worker is started after this one
        deps.stopping.set()  # a delivery drain under way starts no new send
        main = current.main_task if current is not None else None
        if current is not None and main is not None and not main.done():
            current.handle_sig_wait_for_completion(signum)  # stop taking jobs, let them finish

    async def started() -> None:
        outage.recovered()
        probes.worker_running = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    pruner = asyncio.create_task(_prune_forever(deps.redis))
    try:
        while not stop.is_set():
            current = build_worker(
                settings, redis_url=redis_url, deps=deps, on_started=started,
                on_tick=probes.scheduled,
            )  # fmt: skip
            try:
                await current.async_run()
            except asyncio.CancelledError:
                stop.set()  # arq cancels its main task once a signal's grace period is over
            except REDIS_DOWN as exc:
                outage.failed(exc, retry_in=backoff.delay(outage.failures + 1))
            finally:
                probes.worker_running = False
                await _close(current)
            if not stop.is_set():
                await _wait(stop, backoff.delay(outage.failures))
    finally:
        pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if metrics_server is not None:
            await metrics_server.close()
        await deps.aclose()
        log.info("worker_stopped")
