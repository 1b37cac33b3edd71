"""Poll outcome bookkeeping per source, and what `status` reports (SPEC §4).

Status values are plain frozen dataclasses: times are `datetime` (UTC) or None, counts are ints,
health is the boolean `failing` for sources and destinations alike. `--json` is the dataclass
as it is (orjson writes datetimes as ISO 8601), so a new field is one line here and one in the
reader that fills it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from worker import keys
from worker.continuity import REASONS
from worker.outbox import Attempts, Outbox
from worker.quarantine import first_error
from worker.redaction import scrub, scrub_optional
from worker.redis_io import awaited

# A destination is failing after this many failed attempts in a row (SPEC §7).
DESTINATION_FAILURES = 3
# Past this many retrying events, `status` does not read every attempt count: a destination
# whose last round failed is then taken to be failing.
ATTEMPTS_READ_LIMIT = 1000


async def record_poll(
    redis: Redis,
    *,
    source: str,
    ok: bool,
    at: float,
    error: str | None = None,
    requests: int | None = None,
) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        queue_poll_record(pipe, source=source, ok=ok, at=at, error=error, requests=requests)
        await pipe.execute()


def queue_poll_record(
    pipe: Pipeline,
    *,
    source: str,
    ok: bool,
    at: float,
    error: str | None = None,
    requests: int | None = None,
) -> None:
    """`record_poll`'s writes, queued on a pipeline carrying the poll's other bookkeeping."""
    meta = keys.meta(source)
    fields = {"last_poll_at": repr(at), "last_outcome": "ok" if ok else "failed"}
    if requests is not None:
        fields["last_poll_requests"] = str(requests)
    if ok:
        fields["last_ok_at"] = repr(at)
        pipe.hdel(meta, "last_error")
    else:
        fields["last_error"] = scrub(error or "")[:500]
    pipe.hset(meta, mapping=fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollProgress:
    """A listing running now (its worker holds the source's lease)."""

    started_at: datetime
    elapsed_seconds: float
    pages: int
    enrollments: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    name: str
    failing: bool
    last_poll_at: datetime | None
    last_outcome: str | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    tracked: int
    events_total: int
    baseline_done: bool
    next_poll_due_at: datetime | None = None
    poll_in_progress: PollProgress | None = None
    # Provider requests the last poll sent (retries included); None before the first poll.
    last_poll_requests: int | None = None
    # The provider API version in use, where a provider has several (Reply.io v3/v4).
    api_version: str | None = None
    # Records quarantined now, and the latest listing's first error (enrollment_id, field,
    # error); a suspect mass removal being held; a detected loss of stored state.
    quarantined: int = 0
    quarantine_error: dict[str, str | None] | None = None
    removals_held: dict[str, str | int] | None = None
    state_lost: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    name: str
    failing: bool
    pending: int  # waiting: due now or retrying later
    retrying: int  # of those, events that failed at least once
    dead: int
    last_outcome: str | None
    last_success_at: datetime | None
    last_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """A `seqwatch run` worker whose health key is fresh (renewed every 10 s)."""

    id: str
    health: str


def moment(value: str | float | None) -> datetime | None:
    """Unix seconds (as stored) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(float(value), UTC)


_SOURCE_FIELDS = (
    "last_poll_at", "last_outcome", "last_ok_at", "last_error", "consecutive_failures",
    "tracked", "events_total", "baseline", "health", "last_poll_requests", "quarantined",
    "quarantine_first", "removals_held", "state_lost",
)  # fmt: skip


async def source_status(redis: Redis, name: str, *, now: float | None = None) -> SourceStatus:
    now = time.time() if now is None else now
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.meta(name), list(_SOURCE_FIELDS))
        pipe.hget(keys.schedule(), name)
        pipe.hgetall(keys.progress(name))
        pipe.exists(keys.lease(name))
        pipe.hget(keys.provider_memory(name), "api_version")
        meta, due, running, leased, api_version = await pipe.execute()
    values = dict(zip(_SOURCE_FIELDS, meta, strict=True))
    progress = None
    if running and leased:  # a crashed poll's progress stays behind; its lease does not
        started = float(running["started_at"])
        progress = PollProgress(
            started_at=datetime.fromtimestamp(started, UTC),
            elapsed_seconds=round(max(0.0, now - started), 1),
            pages=int(running.get("pages", 0)),
            enrollments=int(running.get("enrollments", 0)),
        )
    return SourceStatus(
        name=name,
        failing=values["health"] == "failing",
        last_poll_at=moment(values["last_poll_at"]),
        last_outcome=values["last_outcome"],
        last_success_at=moment(values["last_ok_at"]),
        last_error=scrub_optional(values["last_error"]),
        consecutive_failures=int(values["consecutive_failures"] or 0),
        tracked=int(values["tracked"] or 0),
        events_total=int(values["events_total"] or 0),
        baseline_done=values["baseline"] == "1",
        next_poll_due_at=moment(due) if due and float(due) > 0 else None,
        poll_in_progress=progress,
        last_poll_requests=(
            int(values["last_poll_requests"]) if values["last_poll_requests"] else None
        ),
        api_version=api_version,
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


async def _most_attempts(redis: Redis, key: str) -> int:
    values: list[str] = await awaited(redis.hvals(key))
    return max((a.count for a in map(Attempts.decode, values) if a is not None), default=0)


async def destination_status(
    redis: Redis, name: str, *, sources: Sequence[str], now_ms: int
) -> DestinationStatus:
    """Failing after DESTINATION_FAILURES failed attempts of one event, or a dead letter since
    the last success; it recovers once the cause is gone (delivered, dropped or replayed)."""
    health: list[str | None] = await awaited(
        redis.hmget(
            keys.destination_health(name), ["last_outcome", "last_success_at", "last_error"]
        )
    )
    last_outcome, last_success = health[0], float(health[1] or 0)
    pending = retrying = dead = 0
    failing = False
    for source in sources:
        counts = await Outbox(redis, source=source, destination=name).counts(now_ms=now_ms)
        pending += counts["pending"]
        retrying += counts["failing"]
        dead += counts["dead"]
        if counts["dead"] and not failing:
            newest = await awaited(redis.zrevrange(keys.dead(source, name), 0, 0, withscores=True))
            failing = bool(newest) and newest[0][1] / 1000 > last_success
        if counts["failing"] and not failing and last_outcome == "failed":
            failing = counts["failing"] > ATTEMPTS_READ_LIMIT or (
                await _most_attempts(redis, keys.attempts(source, name)) >= DESTINATION_FAILURES
            )
    return DestinationStatus(
        name=name,
        failing=failing,
        pending=pending,
        retrying=retrying,
        dead=dead,
        last_outcome=last_outcome,
        last_success_at=moment(health[1]),
        last_error=scrub_optional(health[2]) if last_outcome == "failed" else None,
    )


async def workers(redis: Redis) -> list[WorkerStatus]:
    found: list[WorkerStatus] = []
    async for key in redis.scan_iter(match=keys.WORKER_HEALTH_PREFIX + "*", count=100):
        health = await redis.get(key)
        if health is not None:  # expired between SCAN and GET: not running
            worker_id = key.removeprefix(keys.WORKER_HEALTH_PREFIX)
            found.append(WorkerStatus(id=worker_id, health=health))
    return sorted(found, key=lambda w: w.id)
