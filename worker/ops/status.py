"""Poll outcome bookkeeping per source, and what `status` reports (SPEC §4).

Status values are plain frozen dataclasses: times are `datetime` (UTC) or None, counts are ints,
health is the boolean `failing` for sources and destinations alike. `--json` is the dataclass
as it is (orjson writes datetimes as ISO 8601), so a new field is one line here and one in the
reader that fills it.

Each read is a plan (worker/store/reads.py): `status` runs every source's, destination's and the
workers' reads together, in one round trip (two when it must look closer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.redaction import scrub, scrub_optional
from worker.store import keys
from worker.store.reads import Command, Plan, as_hash, run_async, scan_reply
from worker.wording import STATE_LOSS_REASONS

if TYPE_CHECKING:  # `status` reads through worker.store.redis_lite and never imports redis-py
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

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
    fields, stale = poll_record(ok=ok, at=at, error=error, requests=requests)
    if stale is not None:
        pipe.hdel(meta, stale)
    pipe.hset(meta, mapping=fields)


def poll_record(
    *, ok: bool, at: float, error: str | None = None, requests: int | None = None
) -> tuple[dict[str, str], str | None]:
    """The meta fields one poll outcome sets, and the field it clears (None: none)."""
    fields = {"last_poll_at": repr(at), "last_outcome": "ok" if ok else "failed"}
    if requests is not None:
        fields["last_poll_requests"] = str(requests)
    if ok:
        fields["last_ok_at"] = repr(at)
        return fields, "last_error"
    fields["last_error"] = scrub(error or "")[:500]
    return fields, None


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


def _source_reads(name: str) -> list[Command]:
    return [
        ("HMGET", keys.meta(name), *_SOURCE_FIELDS),
        ("HGET", keys.schedule(), name),
        ("HGETALL", keys.progress(name)),
        ("EXISTS", keys.lease(name)),
        ("HGET", keys.provider_memory(name), "api_version"),
    ]


def source_plan(name: str, *, now: float) -> Plan[SourceStatus]:
    meta, due, running_reply, leased, api_version = yield _source_reads(name)
    values = dict(zip(_SOURCE_FIELDS, meta, strict=True))
    running = as_hash(running_reply)
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
        quarantine_error=_first_error(values["quarantine_first"]),
        removals_held=_held(values["removals_held"]),
        state_lost=_lost(values["state_lost"]),
    )


async def source_status(redis: Redis, name: str, *, now: float | None = None) -> SourceStatus:
    return await run_async(source_plan(name, now=time.time() if now is None else now), redis)


def _first_error(raw: str | None) -> dict[str, str | None] | None:
    """The latest listing's first quarantined record (worker/detect/quarantine.py writes it)."""
    if not raw:
        return None
    import orjson  # only when records are quarantined

    decoded: dict[str, str | None] = orjson.loads(raw)
    return decoded


def _iso(at: str) -> str:
    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _held(raw: str | None) -> dict[str, str | int] | None:
    """ "<absent>|<tracked>|<since>" (worker/detect/emitting.py) -> a dict for status."""
    if not raw:
        return None
    absent, tracked, since = raw.split("|")
    return {"absent": int(absent), "tracked": int(tracked), "since": _iso(since)}


def _lost(raw: str | None) -> dict[str, str] | None:
    """ "<reason>|<at>" (worker/detect/continuity.py) -> a dict for status."""
    if not raw:
        return None
    reason, at = raw.split("|")
    detail = STATE_LOSS_REASONS.get(reason, reason)
    return {"reason": reason, "detail": detail, "at": _iso(at)}


_QUEUE_READS = 5  # per source of a destination, below


def destination_plan(name: str, *, sources: Sequence[str], now_ms: int) -> Plan[DestinationStatus]:
    """Failing after DESTINATION_FAILURES failed attempts of one event, or a dead letter since
    the last success; it recovers once the cause is gone (delivered, dropped or replayed)."""
    reads: list[Command] = [
        ("HMGET", keys.destination_health(name), "last_outcome", "last_success_at", "last_error")
    ]
    for source in sources:
        due, dead = keys.due(source, name), keys.dead(source, name)
        reads += [
            ("ZCARD", due),
            ("HLEN", keys.attempts(source, name)),
            ("ZCARD", dead),
            ("ZREVRANGE", dead, 0, 0, "WITHSCORES"),  # the newest dead letter
        ]
    replies = yield reads
    health = replies[0]
    last_outcome, last_success = health[0], float(health[1] or 0)
    pending = retrying = dead_total = 0
    failing = False
    to_check: list[str] = []  # sources whose retrying events may have failed often enough
    for i, source in enumerate(sources):
        pending_n, failing_n, dead_n, newest = replies[1 + 4 * i : 5 + 4 * i]
        pending += pending_n
        retrying += failing_n
        dead_total += dead_n
        if dead_n and newest and _score(newest) / 1000 > last_success:
            failing = True
        if failing_n and last_outcome == "failed":
            if failing_n > ATTEMPTS_READ_LIMIT:
                failing = True
            else:
                to_check.append(source)
    if not failing and to_check:
        counts = yield [("HVALS", keys.attempts(source, name)) for source in to_check]
        failing = any(_most_attempts(values) >= DESTINATION_FAILURES for values in counts)
    return DestinationStatus(
        name=name,
        failing=failing,
        pending=pending,
        retrying=retrying,
        dead=dead_total,
        last_outcome=last_outcome,
        last_success_at=moment(health[1]),
        last_error=scrub_optional(health[2]) if last_outcome == "failed" else None,
    )


def _score(newest: list[Any]) -> float:
    """ZREVRANGE ... WITHSCORES of one member: [member, score] (or redis-py's [(m, s)])."""
    return float(newest[0][1] if isinstance(newest[0], tuple | list) else newest[1])


def _most_attempts(values: list[str]) -> int:
    from worker.delivery.outbox import Attempts  # only for a destination whose last round failed

    return max((a.count for a in map(Attempts.decode, values) if a is not None), default=0)


async def destination_status(
    redis: Redis, name: str, *, sources: Sequence[str], now_ms: int
) -> DestinationStatus:
    return await run_async(destination_plan(name, sources=sources, now_ms=now_ms), redis)


SCAN_COUNT = 10_000  # keys the server looks at per SCAN round trip


def workers_plan() -> Plan[list[WorkerStatus]]:
    found: list[str] = []
    cursor = 0
    while True:
        (reply,) = yield [
            ("SCAN", cursor, "MATCH", keys.WORKER_HEALTH_PREFIX + "*", "COUNT", SCAN_COUNT)
        ]
        cursor, batch = scan_reply(reply)
        found += batch
        if cursor == 0:
            break
    if not found:
        return []
    (healths,) = yield [("MGET", *found)]
    return sorted(
        (
            WorkerStatus(id=key.removeprefix(keys.WORKER_HEALTH_PREFIX), health=health)
            for key, health in zip(found, healths, strict=True)
            if health is not None  # expired between SCAN and MGET: not running
        ),
        key=lambda w: w.id,
    )


async def workers(redis: Redis) -> list[WorkerStatus]:
    return await run_async(workers_plan(), redis)
