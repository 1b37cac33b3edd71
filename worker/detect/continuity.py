"""Noticing that a source's stored state vanished or went back in time, and saying so.

Each process remembers, per source, the incarnation it last worked in and the highest commit
serial it saw (every poll commit increments `serial` in the source's meta, atomically with its
writes). Before each poll (and on the daemon's tick) the stored pair is compared with it:

* no incarnation stored: the state vanished (Redis restarted empty, FLUSHALL): a new
  incarnation is written, naming the old one as `previous_incarnation`;
* another incarnation, whose `previous_incarnation` is ours: a reset, or a loss another worker
  already announced: adopted silently;
* another incarnation otherwise: the state was replaced (lost, and re-baselined by a worker that
  did not know the old one);
* our incarnation with a lower serial: the state is older than what we committed (a rollback).

Each finding is logged at error level, published as an opt-in `source.state_lost` notice and
recorded in meta (`state_lost`) for `status` until the source's next listing completes (after a
loss, that is the new baseline). A process that never saw the source has nothing to compare.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from worker.delivery.outbox import Route
from worker.detect import notices
from worker.events import HealthType, event_id
from worker.store import keys
from worker.store.redis_io import awaited
from worker.store.state import new_incarnation
from worker.wording import STATE_LOSS_REASONS

log = structlog.get_logger("seqwatch.continuity")

# A Lua function, so the script that opens a poll (worker/detect/opening.py) runs it too.
VERIFY_FUNCTION = """
local function verify(meta, remembered, fresh, remembered_serial)
  local current = redis.call('HGET', meta, 'incarnation')
  local serial = tonumber(redis.call('HGET', meta, 'serial') or '0')
  if not current then
    redis.call('HSET', meta, 'incarnation', fresh, 'previous_incarnation', remembered)
    return {'vanished', fresh, 0}
  end
  if current == remembered then
    if serial < tonumber(remembered_serial) then return {'rolled_back', current, serial} end
    return {'ok', current, serial}
  end
  if redis.call('HGET', meta, 'previous_incarnation') == remembered then
    return {'adopted', current, serial}
  end
  return {'replaced', current, serial}
end
"""
# KEYS[1] meta; ARGV[1] remembered incarnation, ARGV[2] a fresh one, ARGV[3] remembered serial.
_VERIFY = VERIFY_FUNCTION + "return verify(KEYS[1], ARGV[1], ARGV[2], ARGV[3])"

REASONS = STATE_LOSS_REASONS


@dataclass(slots=True)
class SourceMemory:
    """What this process last knew of one source's stored history."""

    incarnation: str | None = None
    serial: int = 0

    def committed(self, serial: int) -> None:
        self.serial = max(self.serial, serial)


async def verify(
    redis: Redis,
    *,
    source: str,
    provider: str,
    memory: SourceMemory,
    routes: Sequence[Route],
    now: datetime,
) -> str | None:
    """Compares stored history with `memory`; announces a loss. Returns its reason, or None."""
    (lost,) = await verify_all(redis, [(source, provider, memory)], routes=routes, now=now)
    return lost


async def verify_all(
    redis: Redis,
    sources: Sequence[tuple[str, str, SourceMemory]],
    *,
    routes: Sequence[Route],
    now: datetime,
) -> list[str | None]:
    """`verify` for (source, provider, memory) each, in one round trip: the daemon's tick checks
    every source this way. Returns each one's loss reason, or None."""
    first = [memory.incarnation is None for _, _, memory in sources]
    async with redis.pipeline(transaction=False) as pipe:
        for (source, _, memory), learn in zip(sources, first, strict=True):
            meta = keys.meta(source)
            if learn:
                pipe.hmget(meta, ["incarnation", "serial"])
            else:
                assert memory.incarnation is not None
                pipe.eval(_VERIFY, 1, meta, *verify_args(memory))
        replies: list[Any] = await pipe.execute()
    found: list[str | None] = []
    for (source, provider, memory), learn, reply in zip(sources, first, replies, strict=True):
        found.append(
            await settle(
                redis,
                ["learn", *reply] if learn else reply,
                source=source,
                provider=provider,
                memory=memory,
                routes=routes,
                now=now,
            )
        )
    return found


def verify_args(memory: SourceMemory) -> tuple[str, str, str]:
    """ARGV of `_VERIFY` for `memory` ('' as the incarnation: learn what is stored)."""
    return memory.incarnation or "", new_incarnation(), str(memory.serial)


async def settle(
    redis: Redis,
    reply: Sequence[Any],
    *,
    source: str,
    provider: str,
    memory: SourceMemory,
    routes: Sequence[Route],
    now: datetime,
) -> str | None:
    """Takes in one verdict (outcome, incarnation, serial): 'learn' (a process that never saw
    the source has nothing to compare) or a `_VERIFY` reply; announces a loss. Returns its
    reason, or None."""
    outcome, current, serial = (v.decode() if isinstance(v, bytes) else v for v in reply)
    memory.incarnation, memory.serial = current, int(serial or 0)
    if outcome in ("learn", "ok", "adopted"):
        return None
    await _announce(redis, source=source, provider=provider, reason=outcome, routes=routes, now=now)
    return str(outcome)


async def _announce(
    redis: Redis,
    *,
    source: str,
    provider: str,
    reason: str,
    routes: Sequence[Route],
    now: datetime,
) -> None:
    message = REASONS[reason]
    log.error("source_state_lost", source=source, reason=reason, error=message)
    await awaited(redis.hset(keys.meta(source), "state_lost", f"{reason}|{now.timestamp()!r}"))
    notice = notices.SourceNotice(
        # Random: a loss is never "the same change" as an earlier one.
        id=event_id(
            source=source,
            enrollment_id="",
            event_type=HealthType.STATE_LOST,
            change_key=secrets.token_hex(16),
        ),
        type=HealthType.STATE_LOST,
        source=source,
        provider=provider,
        detected_at=now,
        details={"reason": reason, "error": message},
    )
    await notices.send(redis, notice, routes=routes)
