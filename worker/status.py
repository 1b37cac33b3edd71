"""Poll outcome bookkeeping per source, and the status report (SPEC §4 `status`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from worker import keys
from worker.continuity import REASONS
from worker.outbox import Outbox
from worker.quarantine import first_error
from worker.redaction import scrub, scrub_optional
from worker.redis_io import awaited


async def record_poll(
    redis: Redis, *, source: str, ok: bool, at: float, error: str | None = None
) -> None:
    meta = keys.meta(source)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            meta, mapping={"last_poll_at": repr(at), "last_outcome": "ok" if ok else "failed"}
        )
        if ok:
            pipe.hset(meta, "last_ok_at", repr(at))
            pipe.hdel(meta, "last_error")
        else:
            pipe.hset(meta, "last_error", scrub(error or "")[:500])
        await pipe.execute()


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    name: str
    last_poll_at: float | None
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int
    tracked: int
    events_total: int
    baseline_done: bool
    failing: bool = False
    # Records the last listing quarantined, and the first one's error (enrollment_id, field,
    # error); a suspect mass removal being held; a detected loss of stored state.
    quarantined: int = 0
    quarantine_error: dict[str, str | None] | None = None
    removals_held: dict[str, str | int] | None = None
    state_lost: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    name: str
    pending: int
    failing: int
    dead: int
    last_outcome: str | None
    last_success_at: float | None
    last_error: str | None = None


def _float(value: str | None) -> float | None:
    return float(value) if value else None


async def source_status(redis: Redis, name: str) -> SourceStatus:
    fields = (
        "last_poll_at", "last_outcome", "last_error", "consecutive_failures",
        "tracked", "events_total", "baseline", "health", "quarantined", "quarantine_first",
        "removals_held", "state_lost",
    )  # fmt: skip
    values = dict(
        zip(fields, await awaited(redis.hmget(keys.meta(name), list(fields))), strict=True)
    )
    return SourceStatus(
        name=name,
        last_poll_at=_float(values["last_poll_at"]),
        last_outcome=values["last_outcome"],
        last_error=scrub_optional(values["last_error"]),
        consecutive_failures=int(values["consecutive_failures"] or 0),
        tracked=int(values["tracked"] or 0),
        events_total=int(values["events_total"] or 0),
        baseline_done=values["baseline"] == "1",
        failing=values["health"] == "failing",
        quarantined=int(values["quarantined"] or 0),
        quarantine_error=first_error(values["quarantine_first"]),
        removals_held=_held(values["removals_held"]),
        state_lost=_lost(values["state_lost"]),
    )


def _iso(at: str) -> str:
    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _held(raw: str | None) -> dict[str, str | int] | None:
    """ "<absent>|<tracked>|<since>" (worker/pipeline.py) -> a dict for status."""
    if not raw:
        return None
    absent, tracked, since = raw.split("|")
    return {"absent": int(absent), "tracked": int(tracked), "since": _iso(since)}


def _lost(raw: str | None) -> dict[str, str] | None:
    """ "<reason>|<at>" (worker/continuity.py) -> a dict for status."""
    if not raw:
        return None
    reason, at = raw.split("|")
    return {"reason": reason, "detail": REASONS.get(reason, reason), "at": _iso(at)}


async def destination_status(
    redis: Redis, name: str, *, sources: Sequence[str], now_ms: int
) -> DestinationStatus:
    pending = failing = dead = 0
    for source in sources:
        counts = await Outbox(redis, source=source, destination=name).counts(now_ms=now_ms)
        pending += counts["pending"]
        failing += counts["failing"]
        dead += counts["dead"]
    health: list[str | None] = await awaited(
        redis.hmget(
            keys.destination_health(name), ["last_outcome", "last_success_at", "last_error"]
        )
    )
    return DestinationStatus(
        name=name,
        pending=pending,
        failing=failing,
        dead=dead,
        last_outcome=health[0],
        last_success_at=_float(health[1]),
        last_error=scrub_optional(health[2]),
    )
