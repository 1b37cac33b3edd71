"""What a poll reads of a source's history as it opens: the listing's generation, whether the
baseline is done, the incarnation, the watermark (worker/detect/opening.py runs the Lua)."""

from __future__ import annotations

import os
import random
import secrets
from dataclasses import dataclass
from typing import Any

# Every poll draws names it rarely uses (worker/detect/opening.py): from a generator seeded once
# from the OS, not a system call each (a forked child reseeds, so no two processes share one).
_names = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _names.seed(secrets.randbits(128)))


def new_incarnation() -> str:
    """A random name for one stored history of a source (see worker/events.py)."""
    return f"{_names.getrandbits(64):016x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListingMeta:
    """What one poll needs to know about the source's history before it starts."""

    generation: int
    baseline_done: bool
    # Random, set when the source's stored history starts (first baseline, after a reset or a
    # data loss); part of every event id, so ids of one history never repeat another's.
    incarnation: str
    watermark: str | None
    last_full_at: float | None
    removals_held: bool = False

    @classmethod
    def from_reply(cls, reply: list[Any]) -> ListingMeta:
        """From BEGIN_LISTING_FUNCTION's reply: (generation, LISTING_FIELDS)."""
        generation, (baseline, watermark, last_full_at, incarnation, held) = reply
        return cls(
            generation=int(generation),
            baseline_done=baseline == "1",
            incarnation=incarnation,
            watermark=watermark or None,
            last_full_at=float(last_full_at) if last_full_at else None,
            removals_held=bool(held),
        )


# A listing begins: its generation number (monotonic, never reused), an incarnation if the
# source has none yet, and what the poll needs to know. A Lua function: it runs inside the
# script that opens a poll (worker/detect/opening.py), once the lease is held.
BEGIN_LISTING_FUNCTION = """
local function begin_listing(meta, fresh_incarnation)
  local generation = redis.call('HINCRBY', meta, 'generation', 1)
  redis.call('HSETNX', meta, 'incarnation', fresh_incarnation)
  return {generation, redis.call(
    'HMGET', meta, 'baseline', 'watermark', 'last_full_at', 'incarnation', 'removals_held')}
end
"""
