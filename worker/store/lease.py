"""Per-source lease with a fencing token: one poll of a source commits at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from worker.store import keys
from worker.store.redis_io import awaited

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# The token is drawn whether or not the lease is free, as before; a negative one: busy. A Lua
# function, so a script that opens a whole poll (worker/detect/opening.py) takes it the same way.
ACQUIRE_FUNCTION = """
local function acquire(counter, lease, ttl_ms)
  local token = redis.call('INCR', counter)
  if redis.call('SET', lease, token, 'NX', 'PX', ttl_ms) then return token end
  return -token
end
"""
_ACQUIRE = ACQUIRE_FUNCTION + "return acquire(KEYS[1], KEYS[2], ARGV[1])"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    key: str
    token: str
    ttl_ms: int


async def try_acquire(redis: Redis, *, source: str, ttl_ms: int) -> Lease | None:
    """A monotonically increasing token, so a stale holder can never commit past a newer one."""
    key = keys.lease(source)
    token = int(
        await awaited(redis.eval(_ACQUIRE, 2, keys.lease_counter(source), key, str(ttl_ms)))
    )
    return Lease(key=key, token=str(token), ttl_ms=ttl_ms) if token > 0 else None


async def renew(redis: Redis, lease: Lease) -> bool:
    result = await awaited(redis.eval(_RENEW, 1, lease.key, lease.token, str(lease.ttl_ms)))
    return bool(result)


async def release(redis: Redis, lease: Lease) -> None:
    await awaited(redis.eval(_RELEASE, 1, lease.key, lease.token))


@contextlib.asynccontextmanager
async def kept_alive(
    redis: Redis, lease: Lease, *, on_lost: Callable[[], None] | None = None
) -> AsyncIterator[None]:
    """Renew the lease in the background while a long listing or drain runs; `on_lost` is
    called once if a renewal finds the lease gone (someone else may hold it now)."""

    async def renew_forever() -> None:
        me = asyncio.current_task()
        # A cancel that lands inside a Redis call can come out as another error (a read timer
        # firing with it) and be swallowed below; `cancelling()` still remembers it, so the
        # loop ends instead of renewing forever under a caller that waits for it.
        while me is None or not me.cancelling():
            try:
                renewed = await renew(redis, lease)
            except Exception:  # Redis away: the next renewal tries again
                renewed = True
            if not renewed:
                if on_lost is not None:
                    on_lost()
                return
            await asyncio.sleep(lease.ttl_ms / 3000)

    # Most polls end before the first renewal is due: a timer, not a task, until then.
    loop = asyncio.get_running_loop()
    task: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal task
        task = loop.create_task(renew_forever())

    timer = loop.call_later(lease.ttl_ms / 3000, start)
    try:
        yield
    finally:
        timer.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
