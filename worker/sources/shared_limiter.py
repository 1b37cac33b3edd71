"""A provider quota shared by every worker through Redis (GCRA, several windows at once).

Reply.io, for example, allows 100 requests a minute *and* 3,000 an hour per user: a request
goes out only when every window has room. Redis's own clock is used, so workers on machines
with skewed clocks still agree. A provider's `Retry-After` pushes every window back for all
workers (`defer`), so one worker's 429 slows the others too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from worker.store import keys
from worker.store.lua import Script
from worker.store.redis_io import awaited

# windows[i]: the key of a theoretical arrival time (ms) per window; args: interval_ms,
# tolerance_ms per window from args[first]. Returns 0 when the request may go (its slot taken),
# else how long to wait (nothing taken). A Lua function, so the script that opens a poll
# (worker/detect/opening.py) can take the poll's first slot in the same round trip.
GCRA_FUNCTION = """
local function gcra(windows, args, first)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local wait, next_tat = 0, {}
  for i = 1, #windows do
    local interval = tonumber(args[first + 2 * i - 2])
    local tolerance = tonumber(args[first + 2 * i - 1])
    local tat = math.max(tonumber(redis.call('GET', windows[i]) or now), now)
    wait = math.max(wait, tat - tolerance - now)
    next_tat[i] = tat + interval
  end
  -- Integer replies truncate: a wait under 1 ms must not read as "go".
  if wait > 0 then return math.ceil(wait) end
  for i = 1, #windows do
    redis.call('SET', windows[i], next_tat[i], 'PX', math.ceil(next_tat[i] - now) + 1000)
  end
  return 0
end
"""
_ACQUIRE = GCRA_FUNCTION + "return gcra(KEYS, ARGV, 1)"
_ACQUIRE_SCRIPT = Script(_ACQUIRE)  # by its SHA1: a poll's later requests each take a slot
# ARGV[1]: delay_ms; then tolerance_ms per window.
_DEFER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local until_tat = now + tonumber(ARGV[1]) + tonumber(ARGV[i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if until_tat > tat then
    redis.call('SET', KEYS[i], until_tat, 'PX', math.ceil(until_tat - now) + 1000)
  end
end
return 1
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    requests: int
    per_seconds: float

    # A burst of a tenth of the quota, then a steady pace that keeps ANY window of
    # `per_seconds` at or under `requests` (burst + window / interval <= requests).
    @property
    def burst(self) -> int:
        return max(1, self.requests // 10)

    @property
    def interval_ms(self) -> float:
        return self.per_seconds * 1000 / max(1, self.requests - self.burst)

    @property
    def tolerance_ms(self) -> float:
        return self.interval_ms * (self.burst - 1)


class SharedRateLimiter:
    """Implements `RateLimiter` (acquire) plus `defer` for a provider's Retry-After."""

    def __init__(
        self,
        redis: Redis,
        *,
        source: str,
        quotas: Sequence[Quota],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not quotas:
            raise ValueError("at least one quota is required")
        self._redis = redis
        self._keys = [keys.rate_window(source, i) for i in range(len(quotas))]
        self._args = [f"{v:.3f}" for q in quotas for v in (q.interval_ms, q.tolerance_ms)]
        self._tolerances = [f"{q.tolerance_ms:.3f}" for q in quotas]
        self._sleep = sleep
        self.quotas = tuple(quotas)
        self._granted = False  # a slot taken ahead (by a poll's opening), not yet used

    def __repr__(self) -> str:
        windows = ", ".join(f"{q.requests}/{q.per_seconds:g}s" for q in self.quotas)
        return f"SharedRateLimiter({windows})"

    @property
    def windows(self) -> tuple[float, ...]:
        return tuple(sorted({q.per_seconds for q in self.quotas}))

    @property
    def window_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def gcra_args(self) -> list[str]:
        """ARGV of `GCRA_FUNCTION` for these quotas: interval, tolerance per window."""
        return list(self._args)

    def grant(self, granted: bool) -> None:
        """A slot was taken ahead in Redis (True): the next `acquire` uses it without asking.
        False drops one not used (the quota counts it anyway: never more requests than it
        allows)."""
        self._granted = granted

    async def acquire(self) -> None:
        if self._granted:
            self._granted = False
            return
        while True:
            wait_ms = await _ACQUIRE_SCRIPT.run(self._redis, self._keys, self._args)
            if not wait_ms:
                return
            await self._sleep(float(wait_ms) / 1000)

    async def defer(self, seconds: float) -> None:
        delay = f"{max(0.0, seconds) * 1000:.0f}"
        await awaited(
            self._redis.eval(_DEFER, len(self._keys), *self._keys, delay, *self._tolerances)
        )
