"""Opening a poll in one Redis round trip: take the source's lease and, only if it was free,
verify the stored history (worker/detect/continuity.py) and begin the listing (its generation);
on the same pipeline, read what the poll then needs (quarantine entries, the store's layout
and its first bucket).

Each step is the same Lua function its own module runs alone; one script runs them in the
order the poll always ran them (lease, continuity, listing), so the lease still comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from worker.detect import continuity
from worker.detect.continuity import SourceMemory
from worker.detect.quarantine import Quarantine
from worker.sources.memory import RedisMemory
from worker.sources.shared_limiter import GCRA_FUNCTION, SharedRateLimiter
from worker.store import keys, lease
from worker.store.lua import Script
from worker.store.state import BEGIN_LISTING_FUNCTION, ListingMeta, StateStore, new_incarnation

# KEYS: lease counter, lease, meta, then the source's quota windows (none: no shared limiter).
# ARGV: lease ttl (ms), continuity.verify_args (remembered incarnation, '' to learn it; a fresh
# one; remembered serial), a fresh incarnation for a source that has none, then the windows'
# GCRA args. Returns {-token} when the lease is busy, else {token, verdict, listing, slot}:
# slot 1 when the poll's first provider request was granted its quota slot here.
_OPEN = (
    lease.ACQUIRE_FUNCTION
    + continuity.VERIFY_FUNCTION
    + BEGIN_LISTING_FUNCTION
    + GCRA_FUNCTION
    + """
local token = acquire(KEYS[1], KEYS[2], ARGV[1])
if token < 0 then return {token} end
local verdict
if ARGV[2] == '' then
  verdict = {'learn', redis.call('HGET', KEYS[3], 'incarnation'),
             redis.call('HGET', KEYS[3], 'serial')}
else
  verdict = verify(KEYS[3], ARGV[2], ARGV[3], ARGV[4])
end
local listing = begin_listing(KEYS[3], ARGV[5])
local slot = 0
if #KEYS > 3 then
  local windows = {}
  for i = 4, #KEYS do windows[#windows + 1] = KEYS[i] end
  if gcra(windows, ARGV, 6) == 0 then slot = 1 end
end
return {token, verdict, listing, slot}
"""
)


_OPEN_SCRIPT = Script(_OPEN)


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    held: lease.Lease
    meta: ListingMeta
    verdict: list[Any]  # for continuity.settle, once the caller guards the lease


async def open_poll(
    redis: Redis,
    *,
    source: str,
    memory: SourceMemory,
    ttl_ms: int,
    store: StateStore,
    quarantine: Quarantine,
    limiter: SharedRateLimiter | None = None,
    provider_memory: RedisMemory | None = None,
) -> Opening | None:
    """None when another worker holds the lease (then nothing was written but a token drawn);
    otherwise the lease is held and the caller must release it. With `limiter`, the poll's
    first request is granted its quota slot here when the quota has room (`limiter.grant`);
    with `provider_memory`, the source's memory is read here (`prime`): the caller un-primes
    both when the poll ends."""
    lease_key = keys.lease(source)
    windows = limiter.window_keys if limiter is not None else []
    script_keys = [keys.lease_counter(source), lease_key, keys.meta(source), *windows]
    args = [
        str(ttl_ms),
        *continuity.verify_args(memory),
        new_incarnation(),
        *(limiter.gcra_args if limiter is not None else []),
    ]
    try:
        replies = await _opening(redis, script_keys, args, quarantine, provider_memory, store)
    except NoScriptError:  # Redis lost its scripts (restart): nothing ran but the reads
        replies = await _opening(
            redis, script_keys, args, quarantine, provider_memory, store, whole=True
        )
    opened, known, *rest = replies
    token = int(opened[0])
    if token < 0:
        return None
    quarantine.loaded(known)
    if provider_memory is not None:
        remembered, *rest = rest
        provider_memory.prime(dict(remembered))
    store.opened(rest)
    _, verdict, listing, slot = opened
    if limiter is not None:
        limiter.grant(bool(int(slot)))
    return Opening(
        held=lease.Lease(key=lease_key, token=str(token), ttl_ms=ttl_ms),
        meta=ListingMeta.from_reply(listing),
        verdict=verdict,
    )


async def _opening(
    redis: Redis,
    script_keys: list[str],
    args: list[str],
    quarantine: Quarantine,
    provider_memory: RedisMemory | None,
    store: StateStore,
    *,
    whole: bool = False,
) -> list[Any]:
    """The opening's one round trip: the script (by its SHA1 unless `whole`), then reads only."""
    async with redis.pipeline(transaction=False) as pipe:
        _OPEN_SCRIPT.queue(pipe, script_keys, args, whole=whole)
        quarantine.queue_load(pipe)
        if provider_memory is not None:
            pipe.hgetall(provider_memory.key)
        store.queue_opening(pipe)
        replies: list[Any] = await pipe.execute()
    return replies
