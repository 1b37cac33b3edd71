"""Opening a poll in one Redis round trip: take the source's lease and, only if it was free,
verify the stored history (worker/detect/continuity.py) and begin the listing (its generation);
on the same pipeline, read what the poll then needs (quarantine entries, the store's layout).

Each step is the same Lua function its own module runs alone; one script runs them in the
order the poll always ran them (lease, continuity, listing), so the lease still comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from worker.detect import continuity
from worker.detect.continuity import SourceMemory
from worker.detect.quarantine import Quarantine
from worker.store import keys, lease
from worker.store.state import BEGIN_LISTING_FUNCTION, ListingMeta, StateStore, new_incarnation

# KEYS: lease counter, lease, meta. ARGV: lease ttl (ms), continuity.verify_args (remembered
# incarnation, '' to learn it; a fresh one; remembered serial), a fresh incarnation for a
# source that has none. Returns {-token} when the lease is busy, else {token, verdict, listing}.
_OPEN = (
    lease.ACQUIRE_FUNCTION
    + continuity.VERIFY_FUNCTION
    + BEGIN_LISTING_FUNCTION
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
return {token, verdict, begin_listing(KEYS[3], ARGV[5])}
"""
)


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
) -> Opening | None:
    """None when another worker holds the lease (then nothing was written but a token drawn);
    otherwise the lease is held and the caller must release it."""
    lease_key = keys.lease(source)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.eval(
            _OPEN,
            3,
            keys.lease_counter(source),
            lease_key,
            keys.meta(source),
            str(ttl_ms),
            *continuity.verify_args(memory),
            new_incarnation(),
        )
        quarantine.queue_load(pipe)
        store.queue_layout(pipe)
        opened, known, *layout = await pipe.execute()
    token = int(opened[0])
    if token < 0:
        return None
    quarantine.loaded(known)
    store.opened(layout)
    _, verdict, listing = opened
    return Opening(
        held=lease.Lease(key=lease_key, token=str(token), ttl_ms=ttl_ms),
        meta=ListingMeta.from_reply(listing),
        verdict=verdict,
    )
