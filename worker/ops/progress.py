"""A listing's progress while it runs: in Redis for `status`, and a `poll_progress` log line.

The source is wrapped rather than the pipeline changed: progress counts the pages the source
has handed over. Redis is written when a page arrives a second or more into the listing, then
at most once a second (one pipelined HSET + EXPIRE), so a fast listing writes nothing at all (a
slow first page shows once it is in); `status` shows it only while the source's lease is held,
so a crashed poll's progress disappears with its lease.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from worker.detect.pipeline import SourceRuntime
from worker.sources.base import RawPage, Source
from worker.store import keys
from worker.store.batch import Batch

log = structlog.get_logger("seqwatch")
STORE_EVERY_S = 1.0
LOG_EVERY_S = 10.0
KEEP_S = 3600  # a leftover key expires; `status` ignores it anyway once the lease is gone


@dataclass(slots=True, kw_only=True)
class Progress:
    source: str
    started_at: float  # epoch seconds
    pages: int = 0
    enrollments: int = 0
    begun: bool = False  # the listing started (so this poll holds the lease)
    stored: bool = False  # written to Redis (so there is something to clear)
    _started: float = field(default_factory=time.monotonic)
    _stored: float = 0.0
    _logged: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self._started


class _Tracked:
    """A Source whose pages are counted on their way to the pipeline."""

    def __init__(
        self,
        inner: Source,
        redis: Redis,
        progress: Progress,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._redis = redis
        self._progress = progress
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # whatever else a provider's source exposes

    @property
    def incremental(self) -> bool:
        return self._inner.incremental

    async def check(self) -> None:
        await self._inner.check()

    async def pages(self, *, updated_after: str | None = None) -> AsyncIterator[RawPage]:
        p = self._progress
        p.begun = True  # the pipeline lists only once it holds the lease
        p._stored = p._logged = self._clock()
        async for page in self._inner.pages(updated_after=updated_after):
            p.pages += 1
            p.enrollments += len(page.records)
            now = self._clock()
            if now - p._stored >= STORE_EVERY_S:
                p._stored = now
                await store(self._redis, p)
            if now - p._logged >= LOG_EVERY_S:
                p._logged = now
                log.info(
                    "poll_progress", source=p.source, pages=p.pages, enrollments=p.enrollments,
                    elapsed_s=round(p.elapsed(), 1),
                )  # fmt: skip
            yield page


async def store(redis: Redis, progress: Progress) -> None:
    progress.stored = True
    key = keys.progress(progress.source)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(
            key,
            mapping={
                "started_at": repr(progress.started_at),
                "pages": progress.pages,
                "enrollments": progress.enrollments,
            },
        )
        pipe.expire(key, KEEP_S)
        await pipe.execute()


async def clear(redis: Redis, progress: Progress) -> None:
    """Forget the progress of a listing this poll ran (never another worker's)."""
    async with redis.pipeline(transaction=False) as pipe:
        forget(pipe, progress)
        if len(pipe):
            await pipe.execute()


def forget(pipe: Pipeline, progress: Progress) -> None:
    """`clear`, queued on a pipeline that writes the poll's other bookkeeping."""
    if progress.stored:
        pipe.delete(keys.progress(progress.source))


def forget_in(batch: Batch, progress: Progress) -> None:
    """`forget`, in a poll's last commit."""
    if progress.stored:
        batch.delete(keys.progress(progress.source))


def tracked(runtime: SourceRuntime, redis: Redis, progress: Progress) -> SourceRuntime:
    """`runtime` with its source counting pages into `progress`."""
    source: Source = _Tracked(runtime.source, redis, progress)
    return replace(runtime, source=source)
