"""Pending deliveries per (source, destination): enqueue at commit; ack, retry or dead-letter."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from worker.events import matches_any
from worker.store import keys
from worker.store.batch import Batch
from worker.store.redis_io import awaited

# Delay before attempt n+1 after n failures (seconds); the last repeats until 24 h have passed.
RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
RETRY_WINDOW_S = 24 * 3600
MAX_RETRY_AFTER_S = 24 * 3600
# A parked delivery waits behind a retrying one of the same enrollment: it stays in the due
# zset (so it still counts as pending) at its original score plus this, past any real due time.
PARKED_OFFSET_MS = 10**13
# Sub-millisecond step between events detected together, so the due set keeps their detection
# order; a double near PARKED_OFFSET_MS still resolves about 0.002 ms, so parking keeps it too.
ORDER_STEP_MS = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Which events one destination wants."""

    destination: str
    events: tuple[str, ...]
    sources: tuple[str, ...]

    def wants(self, *, source: str, event_type: str) -> bool:
        if self.sources and source not in self.sources:
            return False
        return matches_any(event_type, self.events)


class Publishable(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    def to_json(self) -> bytes: ...


def destinations(routes: Sequence[Route], *, source: str, event_type: str) -> list[str]:
    """The destinations whose routes want this source's events of this type."""
    return [r.destination for r in routes if r.wants(source=source, event_type=event_type)]


def enqueue(
    batch: Batch,
    event: Publishable,
    *,
    routes: Sequence[Route],
    now_ms: int,
    order: int = 0,
    targets: Sequence[str] | None = None,
) -> int:
    """Adds the event and one pending delivery per matching destination; returns that count.

    `order` is the event's place among those detected together (one poll): equal scores would
    sort by event id, so a change's `replied` could reach a destination after its `finished`.
    `targets`: `destinations(routes, ...)` for the event, when the caller already knows them.
    """
    if targets is None:
        targets = destinations(routes, source=event.source, event_type=event.type)
    if not targets:
        return 0
    batch.hset(keys.events(event.source), event.id, event.to_json())
    batch.hincr(keys.event_refs(event.source), event.id, len(targets))
    score = now_ms + order * ORDER_STEP_MS
    for destination in targets:
        batch.zadd(keys.due(event.source, destination), event.id, score)
    return len(targets)


async def publish(redis: Redis, event: Publishable, *, routes: Sequence[Route], now_ms: int) -> int:
    """Enqueue outside a poll (health notices): one atomic step, no lease involved."""
    batch = Batch()
    targets = enqueue(batch, event, routes=routes, now_ms=now_ms)
    if targets:
        await batch.commit_unguarded(redis, lease_key=keys.lease(event.source))
    return targets


async def due_span(
    redis: Redis, *, sources: Sequence[str], destination: str, now_ms: int
) -> tuple[float, float] | None:
    """Across the sources' queues for one destination, in one round trip: the scores (ms) of
    the oldest and the newest delivery due now; None when none is."""
    async with redis.pipeline(transaction=False) as pipe:
        for source in sources:
            due = keys.due(source, destination)
            pipe.zrangebyscore(due, "-inf", now_ms, 0, 1, withscores=True)
            pipe.zrevrangebyscore(due, now_ms, "-inf", 0, 1, withscores=True)
        replies: list[list[tuple[str, float]]] = await pipe.execute()
    firsts = [float(r[0][1]) for r in replies[0::2] if r]
    lasts = [float(r[0][1]) for r in replies[1::2] if r]
    if not firsts or not lasts:
        return None
    return min(firsts), max(lasts)


def next_delay(*, attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Backoff with ±20% jitter; a peer's Retry-After wins when it asks for longer."""
    base = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    delay = base * rng.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempts:
    count: int
    first_failure_ms: int
    last_error: str

    def encode(self) -> str:
        return orjson.dumps([self.count, self.first_failure_ms, self.last_error]).decode()

    @classmethod
    def decode(cls, raw: str | None) -> Attempts | None:
        if not raw:
            return None
        count, first, error = orjson.loads(raw)
        return cls(count=int(count), first_failure_ms=int(first), last_error=str(error))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    source: str
    destination: str
    event_id: str
    event_type: str
    dead_at_ms: int
    attempts: int
    error: str


class Outbox:
    """Delivery-side operations on one (source, destination) queue."""

    def __init__(self, redis: Redis, *, source: str, destination: str) -> None:
        self._redis = redis
        self.source = source
        self.destination = destination
        self._due = keys.due(source, destination)
        self._tries = keys.attempts(source, destination)
        self._dead = keys.dead(source, destination)
        self._dead_info = keys.dead_info(source, destination)
        self._events = keys.events(source)
        self._refs = keys.event_refs(source)
        self._held = keys.held(source, destination)
        self._parked = keys.parked(source, destination)

    async def read_due(
        self, *, now_ms: int, limit: int
    ) -> tuple[list[tuple[str, bytes | None]], bool]:
        """The first `limit` due deliveries with their bodies, in one round trip, and whether
        any enrollment is held behind a retrying delivery (see `hold`)."""
        reply: Any = await awaited(
            self._redis.eval(
                _READ_DUE, 3, self._due, self._events, self._held, str(now_ms), str(limit)
            )
        )
        ids, bodies, held = reply
        due: list[tuple[str, bytes | None]] = [
            (i, b.encode() if b is not None else None) for i, b in zip(ids, bodies, strict=True)
        ]
        return due, bool(held)

    async def holders(self, order_keys: Sequence[str]) -> list[str | None]:
        """Per ordering key (an enrollment), the id of its retrying delivery, if any."""
        found: list[str | None] = await awaited(self._redis.hmget(self._held, list(order_keys)))
        return found

    async def hold(self, order_key: str, event_id: str) -> None:
        """`event_id` failed and will be retried: later deliveries of its key wait for it."""
        await awaited(self._redis.hsetnx(self._held, order_key, event_id))

    async def park(self, waiting: Sequence[tuple[str, str]]) -> int:
        """Set aside (order_key, event_id) deliveries whose key is held; returns how many."""
        if not waiting:
            return 0
        flat = [part for pair in waiting for part in pair]
        parked = await awaited(
            self._redis.eval(_PARK, 3, self._due, self._held, self._parked, *flat)
        )
        return int(parked)

    async def release(self, order_key: str, holder_id: str) -> None:
        """The held delivery is gone (dead-lettered): its key's parked deliveries are due."""
        await awaited(
            self._redis.eval(_RELEASE, 3, self._due, self._held, self._parked, order_key, holder_id)
        )

    async def due_now(self, *, now_ms: int, limit: int) -> list[tuple[str, bytes | None]]:
        ids: list[str] = await awaited(
            self._redis.zrangebyscore(self._due, "-inf", now_ms, 0, limit)
        )
        if not ids:
            return []
        bodies: list[str | None] = await awaited(self._redis.hmget(self._events, ids))
        return [
            (i, b.encode() if b is not None else None) for i, b in zip(ids, bodies, strict=True)
        ]

    async def attempts(self, event_ids: Sequence[str]) -> list[Attempts | None]:
        raw: list[str | None] = await awaited(self._redis.hmget(self._tries, list(event_ids)))
        return [Attempts.decode(r) for r in raw]

    async def ack(
        self, event_ids: Sequence[str], *, releases: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Delivered: drop from the queue; the body goes once no destination holds it.

        `releases`: (order_key, holder_id) of delivered holders, whose parked deliveries become
        due again in the same atomic step.
        """
        flat = [part for pair in releases for part in pair]
        scripted = (self._due, self._tries, self._refs, self._events, self._held, self._parked)
        await awaited(self._redis.eval(_ACK, 6, *scripted, str(len(event_ids)), *event_ids, *flat))

    async def reschedule(self, event_id: str, *, due_ms: int, attempts: Attempts) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._due, {event_id: due_ms}, xx=True)
            pipe.hset(self._tries, event_id, attempts.encode())
            await pipe.execute()

    async def bury(self, event_id: str, *, now_ms: int, attempts: Attempts) -> None:
        """Dead-letter: out of the queue, kept (with its body) until replayed or dropped."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._due, event_id)
            pipe.hdel(self._tries, event_id)
            pipe.zadd(self._dead, {event_id: now_ms})
            pipe.hset(self._dead_info, event_id, attempts.encode())
            await pipe.execute()

    async def dead_letters(self) -> list[DeadLetter]:
        entries: list[tuple[str, float]] = await awaited(
            self._redis.zrange(self._dead, 0, -1, withscores=True)
        )
        if not entries:
            return []
        ids = [i for i, _ in entries]
        infos: list[str | None] = await awaited(self._redis.hmget(self._dead_info, ids))
        bodies: list[str | None] = await awaited(self._redis.hmget(self._events, ids))
        letters = []
        for (event_id, score), info, body in zip(entries, infos, bodies, strict=True):
            attempts = Attempts.decode(info)
            letters.append(
                DeadLetter(
                    source=self.source,
                    destination=self.destination,
                    event_id=event_id,
                    event_type=str(orjson.loads(body)["type"]) if body else "?",
                    dead_at_ms=int(score),
                    attempts=attempts.count if attempts else 0,
                    error=attempts.last_error if attempts else "",
                )
            )
        return letters

    async def replay(self, event_ids: Sequence[str], *, now_ms: int) -> int:
        """Back into the queue with a fresh retry budget; the event keeps its id."""
        moved = 0
        for event_id in event_ids:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._dead, event_id)
                pipe.hdel(self._dead_info, event_id)
                pipe.zadd(self._due, {event_id: now_ms})
                removed, _, _ = await pipe.execute()
            moved += int(removed)
        return moved

    async def drop(self, event_ids: Sequence[str]) -> int:
        dropped = 0
        for event_id in event_ids:
            dropped += int(
                await awaited(
                    self._redis.eval(
                        _DROP, 4, self._dead, self._dead_info, self._refs, self._events, event_id
                    )
                )
            )
        return dropped

    async def counts(self, *, now_ms: int) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._due)
            pipe.hlen(self._tries)
            pipe.zcard(self._dead)
            pipe.zcount(self._due, "-inf", now_ms)
            pending, failing, dead, due = await pipe.execute()
        return {"pending": pending, "failing": failing, "dead": dead, "due": due}


_RELEASE_REF = """
local left = redis.call('HINCRBY', KEYS[3], ARGV[i], -1)
if left <= 0 then redis.call('HDEL', KEYS[3], ARGV[i]); redis.call('HDEL', KEYS[4], ARGV[i]) end
"""
# unhold(due, held, parked, order_key, holder): parked deliveries go back to their own scores.
_UNHOLD = f"""
local function unhold(due, held, parked, key, holder)
  if redis.call('HGET', held, key) ~= holder then return end
  redis.call('HDEL', held, key)
  local waiting = redis.call('HGET', parked, key)
  if not waiting then return end
  for id in string.gmatch(waiting, '%S+') do
    local score = tonumber(redis.call('ZSCORE', due, id))
    if score and score >= {PARKED_OFFSET_MS} then
      redis.call('ZADD', due, string.format('%.17g', score - {PARKED_OFFSET_MS}), id)
    end
  end
  redis.call('HDEL', parked, key)
end
"""
_READ_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {{}, {}, 0} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids)), redis.call('HLEN', KEYS[3])}
"""
_ACK = (
    _UNHOLD
    + """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
"""
    + _RELEASE_REF
    + """
  end
end
for j = n + 2, #ARGV, 2 do unhold(KEYS[1], KEYS[5], KEYS[6], ARGV[j], ARGV[j + 1]) end
return 1
"""
)
_PARK = (
    _UNHOLD
    + f"""
local parked = 0
for j = 1, #ARGV, 2 do
  local key, id = ARGV[j], ARGV[j + 1]
  local holder = redis.call('HGET', KEYS[2], key)
  if holder and holder ~= id then
    if not redis.call('ZSCORE', KEYS[1], holder) then
      -- the holder left the queue without releasing (manual cleanup): nothing to wait for
      unhold(KEYS[1], KEYS[2], KEYS[3], key, holder)
    else
      local score = tonumber(redis.call('ZSCORE', KEYS[1], id))
      if score and score < {PARKED_OFFSET_MS} then
        redis.call('ZADD', KEYS[1], string.format('%.17g', score + {PARKED_OFFSET_MS}), id)
        local before = redis.call('HGET', KEYS[3], key)
        redis.call('HSET', KEYS[3], key, before and (before .. ' ' .. id) or id)
        parked = parked + 1
      end
    end
  end
end
return parked
"""
)
_RELEASE = (
    _UNHOLD
    + """
unhold(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
return 1
"""
)
_DROP = (
    """
local i = 1
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
"""
    + _RELEASE_REF
    + """
return 1
"""
)
