"""Delivery benchmark (child side): signed webhook deliveries per second from one process.

The outbox is filled first (not measured), then one `deliver_destination` call drains it, as
`seqwatch deliver` and the daemon's deliver job do: batched Redis outbox reads and acks,
Standard Webhooks signing, up to `concurrency` (the config default) POSTs in flight over
kept-alive connections to the peer's receiver, which verifies each one.

The floor, measured in the same process against the same receiver just before: the same
events signed and POSTed over `concurrency` raw asyncio keep-alive connections (no Redis, no
HTTP library), so seqwatch / floor is what the delivery machinery costs.

SSRF guard on: the guard refuses 127.0.0.1, so the notifier targets a public address
(PUBLIC_IP); the guard's socket factory vets that address as in production, and only the
final TCP connect below the guard is redirected to the local receiver. Nothing leaves the
machine.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from bench.meter import Meter
from bench.seqwatch_job import DESTINATION, ROUTES
from config.settings import DEFAULT_CONCURRENCY
from notifiers.netguard import MAX_CONNECTIONS, AddrInfo, GuardedClient, vetted_socket
from notifiers.signing import parse_secret, signature_header
from notifiers.webhook import WebhookNotifier, post_once
from worker.delivery.deliver import DestinationRuntime, deliver_destination
from worker.delivery.outbox import enqueue
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import DeliveryPermanent
from worker.events import Event, EventType, event_id
from worker.store import keys, lease
from worker.store.batch import Batch

SOURCE = "bench-delivery"
SECRET = "whsec_" + base64.b64encode(b"seqwatch-bench-signing-key-0001").decode()
PUBLIC_IP = "93.184.216.34"  # any public address: the guard must accept it
EVENTS_PER_ENROLLMENT = 2  # so the per-enrollment ordering lanes have work to do
_FILL_CHUNK = 500


class _ToLocalPort(aiohttp.TCPConnector):
    """The product's guarded connector; after its socket factory has vetted the address
    aiohttp chose, the connect goes to the local receiver instead."""

    def __init__(self, port: int) -> None:
        super().__init__(
            limit=MAX_CONNECTIONS, socket_factory=self._socket, happy_eyeballs_delay=None
        )
        self._local = ("127.0.0.1", port)

    def _socket(self, addr_info: AddrInfo) -> socket.socket:
        if addr_info[4] == self._local:  # the redirected connect below: vetted just before
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        return vetted_socket(addr_info)

    async def _wrap_create_connection(
        self, *args: Any, addr_infos: list[AddrInfo], **kwargs: Any
    ) -> Any:
        for addr_info in addr_infos:
            vetted_socket(addr_info).close()  # the guard's check (TargetRefused for loopback)
        local: list[AddrInfo] = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", self._local)]
        return await super()._wrap_create_connection(*args, addr_infos=local, **kwargs)


class _RedirectedClient(GuardedClient):
    """The notifier's guarded client (same session settings) over `_ToLocalPort`."""

    def __init__(self, port: int) -> None:
        super().__init__(allow_private_network=False, timeout=10)
        self._port = port

    def _connector(self) -> aiohttp.TCPConnector:
        return _ToLocalPort(self._port)


def _event(index: int, detected: datetime) -> Event:
    enrollment_id = f"5000:{10_000_000 + index // EVENTS_PER_ENROLLMENT}"
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


async def _guard_refuses_loopback(client: GuardedClient, port: int) -> bool:
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


async def _read_reply(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def raw_floor(*, port: int, bodies: list[tuple[str, bytes]], concurrency: int) -> float:
    """Seconds for `concurrency` raw keep-alive connections to POST every body, signed."""
    key = parse_secret(SECRET)
    queue = list(reversed(bodies))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                msg_id, body = queue.pop()
                stamp = int(time.time())
                signature = signature_header((key,), msg_id=msg_id, timestamp=stamp, body=body)
                writer.write(
                    b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                    b"webhook-id: %s\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\n\r\n"
                    % (len(body), msg_id.encode(), stamp, signature.encode())
                    + body
                )
                if await _read_reply(reader) != 200:
                    raise RuntimeError("bench: the receiver refused a floor POST")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _control(port: int, method: bytes, path: bytes, body: bytes = b"") -> bytes:
    """One call to the peer's control API (bench/peer.py)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
        % (method, path, len(body))
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    reply = await reader.readexactly(length)
    writer.close()
    return reply


async def _reset_receiver(port: int) -> None:
    """Zero the receiver's counters (the floor's POSTs are not the drain's)."""
    await _control(port, b"POST", b"/_bench/hook", orjson.dumps({"secret": SECRET}))


async def _receiver_stats(port: int) -> dict[str, Any]:
    stats: dict[str, Any] = orjson.loads(await _control(port, b"GET", b"/_bench/stats"))
    return stats


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
    concurrency = DEFAULT_CONCURRENCY
    try:
        if guard:
            await notifier.aclose()
            # The notifier's own client, rebuilt so its guard's last hop reaches the receiver.
            notifier._client = _RedirectedClient(receiver_port)
            refused = await _guard_refuses_loopback(notifier._client, receiver_port)
        await _fill_outbox(redis, count=count)
        bodies = await _queued_bodies(redis)
        floor_before = await raw_floor(port=receiver_port, bodies=bodies, concurrency=concurrency)
        await _reset_receiver(receiver_port)
        runtime = DestinationRuntime(name=DESTINATION, notifier=notifier, concurrency=concurrency)
        with meter:
            result = await deliver_destination(redis, runtime, sources=[SOURCE], clock=time.time)
        stats = await _receiver_stats(receiver_port)  # the drain's counts, before the floor's
        floor_after = await raw_floor(port=receiver_port, bodies=bodies, concurrency=concurrency)
        # The faster of the floors run just before and just after: on a noisy machine the
        # ratio errs against seqwatch, never for it.
        floor_s = min(floor_before, floor_after)
    finally:
        await notifier.aclose()
        await redis.aclose()
    return {
        "delivered": result.delivered,
        "failed": result.failed,
        "error": result.error,
        "guard": guard,
        "guard_refuses_loopback": refused,
        "concurrency": concurrency,
        "floor_s": floor_s,
        "floor_count": len(bodies),
        "received": stats["hook_posts"],
        "verified": stats["hook_verified"],
    }


async def _queued_bodies(redis: Redis) -> list[tuple[str, bytes]]:
    """The (id, body) pairs the drain will send, for the floor to send the same bytes."""
    stored: dict[str, str] = await redis.hgetall(keys.events(SOURCE))  # type: ignore[misc]
    return [(event_id, body.encode()) for event_id, body in stored.items()]
