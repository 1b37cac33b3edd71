"""Delivery benchmark (child side): signed webhook deliveries per second from one process.

The outbox is filled first (not measured), then one `deliver_destination` call drains it
through a real WebhookNotifier: Redis outbox reads and acks, Standard Webhooks signing, one
POST per event over a kept-alive connection to the peer's receiver, which verifies each one.

SSRF guard on: the guard refuses 127.0.0.1, so the notifier targets a public address
(PUBLIC_IP); the guard resolves and vets it as in production, and only the final TCP connect
below the guard is redirected to the local receiver. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
from redis.asyncio import Redis

from bench.meter import Meter
from bench.seqwatch_job import DESTINATION, ROUTES
from notifiers.netguard import GuardedBackend, GuardedTransport, user_agent
from notifiers.webhook import WebhookNotifier, post_once
from worker import lease
from worker.batch import Batch
from worker.deliver import DestinationRuntime, deliver_destination
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import DeliveryPermanent
from worker.events import Event, EventType, event_id
from worker.outbox import enqueue

SOURCE = "bench-delivery"
SECRET = "whsec_" + base64.b64encode(b"seqwatch-bench-signing-key-0001").decode()
PUBLIC_IP = "93.184.216.34"  # any public address: the guard must accept it
_FILL_CHUNK = 500


class _ToLocalPort(httpcore.AsyncNetworkBackend):
    """Below the guard: connect to the local receiver whatever vetted address was chosen."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(
            "127.0.0.1", self._port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _RedirectedGuardedTransport(GuardedTransport):
    """The product's guarded transport (same pool limits), its guard over `_ToLocalPort`."""

    def __init__(self, port: int) -> None:
        super().__init__(allow_private_network=False)
        pool = self._pool
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=pool._max_connections,
            max_keepalive_connections=pool._max_keepalive_connections,
            keepalive_expiry=pool._keepalive_expiry,
            network_backend=GuardedBackend(allow_private_network=False, inner=_ToLocalPort(port)),
        )


def _guarded_client(port: int) -> httpx.AsyncClient:
    """As notifiers.netguard.guarded_client builds it, over the redirected transport."""
    return httpx.AsyncClient(
        transport=_RedirectedGuardedTransport(port),
        timeout=10,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent()},
    )


def _event(index: int, detected: datetime) -> Event:
    enrollment_id = f"5000:{10_000_000 + index}"
    return Event(
        id=event_id(
            source=SOURCE,
            enrollment_id=enrollment_id,
            event_type=EventType.STEP_ADVANCED,
            change_key=f"bench|{index}",
        ),
        type=EventType.STEP_ADVANCED,
        source=SOURCE,
        provider="replyio",
        enrollment_id=enrollment_id,
        sequence=SequenceRef(id="5000", name="Bench sequence 1"),
        contact=Contact(
            id=str(10_000_000 + index),
            email=f"ada.ortiz.{10_000_000 + index}@acme.example",
            name="Ada Ortiz",
            company="Acme A",
        ),
        previous=State(status=Status.ACTIVE, raw_status="Active", step=1, opted_out=False),
        current=State(status=Status.ACTIVE, raw_status="Active", step=2, opted_out=False),
        detected_at=detected,
    )


async def _fill_outbox(redis: Redis, *, count: int) -> None:
    held = await lease.try_acquire(redis, source=SOURCE, ttl_ms=60_000)
    if held is None:
        raise RuntimeError("bench: delivery source lease is busy")
    detected, now_ms = datetime.now(UTC), int(time.time() * 1000) - 1000
    try:
        for start in range(0, count, _FILL_CHUNK):
            batch = Batch()
            for index in range(start, min(count, start + _FILL_CHUNK)):
                enqueue(batch, _event(index, detected), routes=ROUTES, now_ms=now_ms)
            await batch.commit(redis, lease_key=held.key, token=held.token, ttl_ms=held.ttl_ms)
    finally:
        await lease.release(redis, held)


async def _guard_refuses_loopback(client: httpx.AsyncClient, port: int) -> bool:
    try:
        await post_once(
            client,
            destination=DESTINATION,
            url=f"http://127.0.0.1:{port}/hook",
            content=b"{}",
            headers={},
        )
    except DeliveryPermanent:
        return True
    return False


async def deliver_all(
    *, receiver_port: int, redis_url: str, count: int, guard: bool, meter: Meter
) -> dict[str, Any]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    host = PUBLIC_IP if guard else "127.0.0.1"
    notifier = WebhookNotifier(
        name=DESTINATION,
        url=f"http://{host}:{receiver_port}/hook",
        secrets=(SECRET,),
        allow_private_network=not guard,
    )
    refused: bool | None = None
    try:
        if guard:
            await notifier.aclose()
            # The notifier's own client, rebuilt so its guard's last hop reaches the receiver.
            notifier._client = _guarded_client(receiver_port)
            refused = await _guard_refuses_loopback(notifier._client, receiver_port)
        await _fill_outbox(redis, count=count)
        runtime = DestinationRuntime(name=DESTINATION, notifier=notifier)
        with meter:
            result = await deliver_destination(
                redis, runtime, sources=[SOURCE], clock=time.time, max_rounds=count + 1
            )
    finally:
        await notifier.aclose()
        await redis.aclose()
    return {
        "delivered": result.delivered,
        "failed": result.failed,
        "error": result.error,
        "guard": guard,
        "guard_refuses_loopback": refused,
    }
