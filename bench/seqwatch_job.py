"""One real seqwatch poll of the synthetic account: the registry's Reply.io source, the real
normalizer and `poll_source`, against the given Redis. Runs inside a measured child process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# The provider transport imports aiohttp on its first request; a running worker has long
# done so, so it is imported here, outside the measured poll.
import aiohttp  # noqa: F401
import httpx

from bench.meter import Meter
from bench.synth import API_KEY
from worker.app.deps import provider_client
from worker.delivery.outbox import Route
from worker.detect.pipeline import SourceRuntime, poll_source
from worker.normalize import NORMALIZERS
from worker.sources.limiter import PacingLimiter
from worker.sources.registry import SourceParams, build_source
from worker.store.redis_conn import connect

SOURCE = "bench"
PROVIDER = "replyio"
DESTINATION = "bench-hook"
# What `requests_per_minute` set very high gives: the pacer never waits on a local fake.
UNPACED_PER_SECOND = 1e9
# One webhook destination taking every event: a poll stores events and their deliveries.
ROUTES = (Route(destination=DESTINATION, events=("*",), sources=()),)


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_http() -> httpx.AsyncClient:
    """The provider client `seqwatch` itself opens (worker.app.deps): its transport is measured."""
    return provider_client(max_jobs=1)


def runtime_for(
    name: str, *, peer_url: str, http: httpx.AsyncClient, sequences: tuple[str, ...] = ()
) -> SourceRuntime:
    """The registry's Reply.io source with its own unpaced pacer, as worker.app.deps builds it."""
    source = build_source(
        PROVIDER,
        SourceParams(
            name=name,
            api_key=API_KEY,
            base_url=peer_url,
            sequences=sequences,
            http=http,
            limiter=PacingLimiter(per_second=UNPACED_PER_SECOND),
            api_version="v4",  # the synthetic peer serves the v4 shape
        ),
    )
    return SourceRuntime(
        name=name, provider=PROVIDER, source=source, normalize=NORMALIZERS[PROVIDER]
    )


async def poll_once(*, peer_url: str, redis_url: str, meter: Meter) -> dict[str, Any]:
    """Builds the source as `seqwatch` does (worker.app.deps), then measures one poll."""
    redis = connect(redis_url)
    http = open_http()
    try:
        runtime = runtime_for(SOURCE, peer_url=peer_url, http=http)
        with meter:
            result = await poll_source(redis, runtime, routes=ROUTES, now=utcnow)
    finally:
        await http.aclose()
        await redis.aclose()
    return {
        "enrollments": result.enrollments,
        "events": result.events,
        "pages": result.pages,
        "removed": result.removed,
        "baseline": result.baseline,
    }
