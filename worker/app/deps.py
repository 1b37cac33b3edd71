"""Deps: redis, sources, notifiers and routes for one process; opened once, closed once."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any, TextIO

import httpx
from redis.asyncio import Redis

from config.settings import DestinationSettings, DestinationType, Settings, SourceSettings
from notifiers.registry import NotifierParams, build_notifier
from notifiers.slack import SourceDisplay
from worker.delivery.deliver import DestinationRuntime
from worker.delivery.outbox import Route
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.ops import metrics
from worker.sources.memory import RedisMemory
from worker.sources.registry import PROVIDERS, SourceParams, build_source
from worker.sources.shared_limiter import Quota, SharedRateLimiter
from worker.sources.transport import AiohttpTransport, ProviderHttp
from worker.store.redis_conn import connect

USER_AGENT = "seqwatch/0.1 (+https://github.com/seqwatch)"


@dataclass(kw_only=True)
class Deps:
    redis: Redis
    sources: dict[str, SourceRuntime]
    poll_intervals: dict[str, float]
    failure_thresholds: dict[str, int]
    destinations: dict[str, DestinationRuntime]
    routes: tuple[Route, ...]
    max_polls: int = 100  # [worker] max_jobs
    _clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)
    # Set by the daemon on SIGTERM/SIGINT: a long delivery drain stops starting new sends.
    stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def aclose(self) -> None:
        for destination in self.destinations.values():
            await destination.notifier.aclose()
        for client in self._clients:
            await client.aclose()
        await self.redis.aclose()


def _quotas(settings: SourceSettings) -> tuple[Quota, ...]:
    if settings.requests_per_minute:
        return (Quota(requests=max(1, round(settings.requests_per_minute)), per_seconds=60),)
    return PROVIDERS[settings.provider].quotas


def _source_runtime(
    settings: SourceSettings, client: httpx.AsyncClient, redis: Redis
) -> SourceRuntime:
    limiter = SharedRateLimiter(redis, source=settings.name, quotas=_quotas(settings))
    memory = RedisMemory(redis, source=settings.name)
    source = build_source(
        settings.provider,
        SourceParams(
            name=settings.name,
            api_key=settings.api_key.reveal(),
            base_url=settings.base_url,
            sequences=settings.sequences,
            http=client,
            limiter=limiter,
            timeout=settings.timeout,
            memory=memory,
            full_sync_interval=settings.full_sync_interval,
            api_version=settings.api_version,
        ),
    )
    return SourceRuntime(
        name=settings.name,
        provider=settings.provider,
        source=source,
        normalize=NORMALIZERS[settings.provider],
        full_sync_interval=settings.full_sync_interval,
        limiter=limiter,
        provider_memory=memory,
    )


# Slack allows about one message per second per incoming webhook, whoever sends it.
SLACK_QUOTA = Quota(requests=1, per_seconds=1)


def _destination_runtime(
    settings: DestinationSettings,
    stream: TextIO,
    redis: Redis,
    displays: dict[str, SourceDisplay] | None = None,
) -> DestinationRuntime:
    notifier = build_notifier(
        NotifierParams(
            name=settings.name,
            type=settings.type.value,
            url=settings.url.reveal() if settings.url else None,
            secrets=tuple(s.reveal() for s in settings.secrets),
            allow_private_network=settings.allow_private_network,
            stream=stream,
            json_lines=settings.json_lines,
            pacer=SharedRateLimiter(redis, source=f"slack.{settings.name}", quotas=[SLACK_QUOTA]),
            displays=displays or {},
        )
    )
    # Slack and console send one message at a time (Slack: one per second per webhook).
    concurrency = settings.concurrency if settings.type is DestinationType.WEBHOOK else 1
    return DestinationRuntime(name=settings.name, notifier=notifier, concurrency=concurrency)


class _NoCookies(CookieJar):
    """Providers authenticate by API key; a cookie one account's API sets must not ride along
    on another source's requests through the shared client (and parsing them costs CPU)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class _Cookieless(httpx.Cookies):
    """httpx offers every response's cookies to the jar through a urllib Request it builds
    (about 5% of a small poll's CPU); _NoCookies would discard them anyway."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def provider_client(max_jobs: int) -> httpx.AsyncClient:
    """One client for every source (a TLS context each would cost ~1 MB per source), with a
    connection per job `seqwatch run` runs at once."""
    limits = httpx.Limits(
        max_connections=max(100, max_jobs), max_keepalive_connections=max(50, max_jobs)
    )
    client = ProviderHttp(
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
        limits=limits,
        cookies=_NoCookies(),
        transport=AiohttpTransport(limits=limits),
        event_hooks={"response": [metrics.on_provider_response]},
    )
    client._cookies = _Cookieless(_NoCookies())  # the setter would copy it into a plain Cookies
    return client


def open_deps(settings: Settings, *, redis_url: str, stream: TextIO | None = None) -> Deps:
    redis = connect(redis_url)
    client = provider_client(settings.worker.max_jobs)
    clients = [client]
    sources = {s.name: _source_runtime(s, client, redis) for s in settings.sources}
    displays = {
        s.name: SourceDisplay(label=s.label, record_url=s.record_url) for s in settings.sources
    }
    return Deps(
        redis=redis,
        sources=sources,
        poll_intervals={s.name: s.poll_interval for s in settings.sources},
        failure_thresholds={s.name: s.failure_threshold for s in settings.sources},
        destinations={
            d.name: _destination_runtime(d, stream or sys.stdout, redis, displays)
            for d in settings.destinations
        },
        routes=tuple(
            Route(destination=d.name, events=d.events, sources=d.sources)
            for d in settings.destinations
        ),
        max_polls=settings.worker.max_jobs,
        _clients=clients,
    )
