"""`/metrics`, `/healthz` and `/readyz` for `seqwatch run` (SPEC §7), on the daemon's loop.

A plain asyncio HTTP/1.1 responder (one request per connection): the scrape must await Redis
for the shared gauges, which prometheus_client's threaded server cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.delivery.outbox import Outbox
from worker.ops import metrics
from worker.ops.probes import Probes
from worker.store import keys
from worker.store.redis_io import awaited

log = structlog.get_logger("seqwatch.metrics")
PROBE_TIMEOUT_S = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST_BYTES = 8192


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """Gauges read from Redis at scrape time, identical on every worker."""

    tracked: dict[str, float]
    last_success: dict[str, float]
    pending: dict[str, float]
    dead: dict[str, float]


async def read_shared(
    redis: Redis, *, sources: Sequence[str], destinations: Sequence[str], now_ms: int
) -> Shared:
    tracked: dict[str, float] = {}
    last_success: dict[str, float] = {}
    for source in sources:
        values = await awaited(redis.hmget(keys.meta(source), ["tracked", "last_ok_at"]))
        tracked[source] = float(values[0] or 0)
        if values[1]:
            last_success[source] = float(values[1])
    pending = dict.fromkeys(destinations, 0.0)
    dead = dict.fromkeys(destinations, 0.0)
    for destination in destinations:
        for source in sources:
            counts = await Outbox(redis, source=source, destination=destination).counts(
                now_ms=now_ms
            )
            pending[destination] += counts["pending"]
            dead[destination] += counts["dead"]
    return Shared(tracked=tracked, last_success=last_success, pending=pending, dead=dead)


class _SharedCollector(Collector):
    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    def collect(self) -> Iterable[GaugeMetricFamily]:
        s = self._shared
        for name, doc, label, values in (
            ("seqwatch_enrollments_tracked", "Enrollments tracked.", "source", s.tracked),
            ("seqwatch_last_success_timestamp_seconds",
             "Unix time of the source's last successful poll.", "source", s.last_success),
            ("seqwatch_deliveries_pending", "Deliveries waiting (due or retrying).",
             "destination", s.pending),
            ("seqwatch_dead_letters", "Deliveries that exhausted their retries.",
             "destination", s.dead),
        ):  # fmt: skip
            family = GaugeMetricFamily(name, doc, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family


class MetricsServer:
    def __init__(
        self,
        *,
        redis: Redis,
        sources: Sequence[str],
        destinations: Sequence[str],
        probes: Probes,
    ) -> None:
        self._redis = redis
        self._sources = list(sources)
        self._destinations = list(destinations)
        self._probes = probes
        self._counters = metrics.enable()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = self._server.sockets[0].getsockname()
        log.info("metrics_listening", host=bound[0], port=bound[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def scrape(self) -> bytes:
        shared = await read_shared(
            self._redis, sources=self._sources, destinations=self._destinations,
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
        registry = CollectorRegistry()
        registry.register(_SharedCollector(shared))
        return generate_latest(self._counters.registry) + generate_latest(registry)

    async def _redis_ok(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), PROBE_TIMEOUT_S))
        except (RedisError, OSError, TimeoutError):
            return False

    async def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        match path:
            case "/metrics":
                try:
                    return 200, CONTENT_TYPE, await asyncio.wait_for(self.scrape(), 10)
                except (RedisError, OSError, TimeoutError):
                    return 503, "text/plain", b"redis unavailable\n"
            case "/healthz":
                if await self._redis_ok():
                    return 200, "text/plain", b"ok\n"
                return 503, "text/plain", b"redis unavailable\n"
            case "/readyz":
                ready, why = self._probes.ready()
                return (200 if ready else 503), "text/plain", why.encode() + b"\n"
        return 404, "text/plain", b"not found: try /metrics, /healthz or /readyz\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, *_ = head[:MAX_REQUEST_BYTES].decode("latin-1").split(" ", 2)
            if method not in ("GET", "HEAD"):
                status, kind, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, kind, body = await self.respond(target.split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass  # a client that sent no request; nothing to answer
        except OSError:
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
