"""`seqwatch status`: sources, destinations and workers, for people and (`--json`) scripts.

Reads Redis only, so it starts fast and works while `seqwatch run` is down: the command reads
through worker.store.redis_lite, without asyncio or redis-py, in one round trip or two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from worker.ops.status import (
    DestinationStatus,
    SourceStatus,
    WorkerStatus,
    destination_plan,
    source_plan,
    workers_plan,
)
from worker.store.reads import Plan, gather, run_async, run_sync
from worker.wording import duration, plural

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from worker.store.redis_lite import LiteRedis

OK, FAILED = 0, 1


def _iso(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else "never"


def _when(at: datetime | None, now: datetime) -> str:
    """'2026-11-30T06:40:00Z (12 s ago)', or 'never'."""
    if at is None:
        return "never"
    delta = (now - at).total_seconds()
    return f"{_iso(at)} ({duration(delta)} {'ago' if delta >= 0 else 'from now'})"


def _source_lines(s: SourceStatus, now: datetime) -> list[str]:
    if s.failing:
        health = f"FAILING ({plural(s.consecutive_failures, 'failed poll')} in a row)"
    elif s.consecutive_failures:
        health = f"ok, but the last {plural(s.consecutive_failures, 'poll')} failed"
    else:
        health = "ok" if s.last_outcome else "never polled"
    lines = [
        f"  {s.name}: {health}; last poll {_when(s.last_poll_at, now)}, "
        f"{plural(s.tracked, 'enrollment')} tracked, {plural(s.events_total, 'event')} emitted"
    ]
    if s.last_poll_requests is not None or s.api_version is not None:
        version = f"API {s.api_version}, " if s.api_version else ""
        sent = (
            "?"
            if s.last_poll_requests is None
            else plural(s.last_poll_requests, "provider request")
        )
        lines.append(f"    {version}last poll sent {sent}")
    if s.last_error:
        lines.append(f"    last error: {s.last_error}")
    lines += [f"    {note}" for note in _source_notes(s)]
    if s.poll_in_progress is not None:
        p = s.poll_in_progress
        lines.append(
            f"    polling now: {plural(p.pages, 'page')}, {plural(p.enrollments, 'enrollment')}, "
            f"for {duration(p.elapsed_seconds)}"
        )
    elif s.next_poll_due_at is not None:
        wait = (s.next_poll_due_at - now).total_seconds()
        lines.append(f"    next poll {'in ' + duration(wait) if wait > 0 else 'due now'}")
    return lines


def _source_notes(s: SourceStatus) -> list[str]:
    """Quarantine, held removals and state loss, one line each (SPEC §5, issue 9)."""
    notes = []
    if s.quarantined and s.quarantine_error:
        q = s.quarantine_error
        notes.append(
            f"{plural(s.quarantined, 'record')} quarantined; first: enrollment "
            f"{q['enrollment_id'] or '(id unreadable)'}, field {q['field']!r}: {q['error']}"
        )
    if s.removals_held:
        h = s.removals_held
        notes.append(
            f"REMOVALS HELD since {h['since']}: {h['absent']} of {h['tracked']} "
            "enrollments absent (suspect listing; removed only if 3 listings in a row agree)"
        )
    if s.state_lost:
        notes.append(f"STATE LOST at {s.state_lost['at']}: {s.state_lost['detail']}")
    return notes


def _destination_lines(d: DestinationStatus, now: datetime) -> list[str]:
    counts = f"{d.pending:,} pending"
    if d.retrying:
        counts += f" ({d.retrying:,} retrying)"
    counts += f", {d.dead:,} dead-lettered"
    lines = [
        f"  {d.name}: {'FAILING' if d.failing else 'ok'}; {counts}, "
        f"last success {_when(d.last_success_at, now)}"
    ]
    if d.last_error:
        lines.append(f"    last error: {d.last_error}")
    return lines


Report = tuple[list[SourceStatus], list[DestinationStatus], list[WorkerStatus]]


def _plan(sources: Sequence[str], destinations: Sequence[str], now: datetime) -> Plan[Report]:
    """Every read `status` makes, side by side: one round trip, two or three at most."""
    now_ms = int(now.timestamp() * 1000)
    plans: list[Plan[Any]] = [source_plan(name, now=now.timestamp()) for name in sources]
    plans += [destination_plan(name, sources=sources, now_ms=now_ms) for name in destinations]
    plans.append(workers_plan())
    results = yield from gather(plans)
    return results[: len(sources)], results[len(sources) : -1], results[-1]


async def status(
    redis: Redis,
    out: TextIO,
    *,
    as_json: bool,
    sources: Sequence[str],
    destinations: Sequence[str],
) -> int:
    """Exit 1 when any source or destination is failing: usable as a probe."""
    now = datetime.now(UTC)
    report = await run_async(_plan(sources, destinations, now), redis)
    return _write(report, out, now=now, as_json=as_json)


def status_lite(
    client: LiteRedis,
    out: TextIO,
    *,
    as_json: bool,
    sources: Sequence[str],
    destinations: Sequence[str],
) -> int:
    """`status` over worker.store.redis_lite: what the command runs (no asyncio, no redis-py)."""
    now = datetime.now(UTC)
    report = run_sync(_plan(sources, destinations, now), client)
    return _write(report, out, now=now, as_json=as_json)


def _write(report: Report, out: TextIO, *, now: datetime, as_json: bool) -> int:
    source_list, destination_list, running = report
    failing = any(s.failing for s in source_list) or any(d.failing for d in destination_list)
    if as_json:
        import orjson  # --json only: it imports json and uuid on its way

        doc = {
            "failing": failing,
            "checked_at": now,
            "workers": running,
            "sources": source_list,
            "destinations": destination_list,
        }
        option = orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z
        out.write(orjson.dumps(doc, option=option).decode() + "\n")
        return FAILED if failing else OK
    names = ", ".join(w.id for w in running)
    print(
        f"workers: {len(running)} running" + (f" ({names})" if names else " (no `seqwatch run`)"),
        file=out,
    )
    print("sources:", file=out)
    for s in source_list:
        print("\n".join(_source_lines(s, now)), file=out)
    print("destinations:", file=out)
    for d in destination_list:
        print("\n".join(_destination_lines(d, now)), file=out)
    return FAILED if failing else OK
