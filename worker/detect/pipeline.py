"""Poll one source: open (worker/detect/opening), settle continuity, choose a full or an
incremental listing, list it page by page (worker/detect/listing), release."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from redis.asyncio import Redis

from worker.delivery.outbox import Route
from worker.detect import continuity
from worker.detect.listing import Listing
from worker.detect.opening import open_poll
from worker.detect.quarantine import Quarantine
from worker.detect.result import PollResult
from worker.detect.runtime import SourceRuntime
from worker.store import lease
from worker.store.batch import Batch
from worker.store.seen import SeenIds
from worker.store.state import StateStore

# Other modules import the poll's types from here.
__all__ = ["LEASE_TTL_MS", "LeaseBusy", "PollResult", "SourceRuntime", "poll_source"]

# Renewed every third of it while a poll runs; a holder that dies frees the source this soon.
LEASE_TTL_MS = 15_000


class LeaseBusy(Exception):
    """Another worker is polling this source right now."""


async def poll_source(
    redis: Redis,
    runtime: SourceRuntime,
    *,
    routes: Sequence[Route],
    now: Callable[[], datetime],
    lease_ttl_ms: int = LEASE_TTL_MS,
    closing: Callable[[Batch], None] | None = None,
) -> PollResult:
    """One listing of `runtime`; raises SourceError (nothing past the failing page is written).
    `closing` adds the caller's writes to the listing's last commit (once, if it completes)."""
    store = StateStore(redis, source=runtime.name)
    quarantine = Quarantine(runtime.name)
    opening = await open_poll(
        redis,
        source=runtime.name,
        memory=runtime.memory,
        ttl_ms=lease_ttl_ms,
        store=store,
        quarantine=quarantine,
        limiter=runtime.limiter,
        provider_memory=runtime.provider_memory,
    )
    if opening is None:
        raise LeaseBusy(f"source {runtime.name!r} is being polled by another worker")
    held, meta = opening.held, opening.meta
    listing: Listing | None = None
    try:
        async with lease.kept_alive(redis, held):
            lost = await continuity.settle(
                redis,
                opening.verdict,
                source=runtime.name,
                provider=runtime.provider,
                memory=runtime.memory,
                routes=routes,
                now=now(),
            )
            runtime.memory.incarnation = meta.incarnation
            started_at = time.time()
            full = (
                not runtime.source.incremental
                or not meta.baseline_done
                or meta.watermark is None
                or meta.last_full_at is None
                or started_at - meta.last_full_at >= runtime.full_sync_interval
            )
            listing = Listing(
                redis,
                runtime,
                routes=routes,
                held=held,
                meta=meta,
                now=now,
                store=store,
                quarantine=quarantine,
                closing=closing,
            )
            listing.result.full_listing = full
            listing.result.state_lost = lost
            if full and meta.baseline_done:
                listing.seen = SeenIds()
            updated_after = None if full else meta.watermark
            async for page in runtime.source.pages(updated_after=updated_after):
                listing.skipped.update(page.skipped_sequences)
                await listing.page(page)
            await listing.finish(full=full, started_at=started_at)
            return listing.result
    finally:
        if runtime.limiter is not None:
            runtime.limiter.grant(False)  # a slot the poll did not use is not carried over
        if runtime.provider_memory is not None:
            runtime.provider_memory.prime(None)
        if listing is None or not listing.released:
            await lease.release(redis, held)
