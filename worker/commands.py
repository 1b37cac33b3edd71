"""The async bodies of the CLI commands; each returns an exit status and prints a summary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

import orjson

from notifiers.base import OutboundEvent
from worker.deps import Deps
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import DeliveryError, SourceError
from worker.events import Event, EventType, event_id
from worker.outbox import DeadLetter, Outbox
from worker.pipeline import LeaseBusy, PollResult
from worker.redaction import scrub
from worker.service import run_deliver, run_poll
from worker.state import StateStore
from worker.status import SourceStatus, destination_status, source_status

OK, FAILED = 0, 1
POLL_CONCURRENCY = 8  # sources polled at once; each has its own provider quota


async def deliver_all(deps: Deps, out: TextIO) -> int:
    failed = False
    for name in deps.destinations:
        result = await run_deliver(deps, name)
        failed |= result.failed
        if result.delivered or result.failed:
            line = f"  -> {name}: {result.delivered} delivered"
            if result.retrying:
                line += f", {result.retrying} will be retried"
            if result.dead:
                line += f", {result.dead} dead-lettered"
            print(line, file=out)
    return FAILED if failed else OK


async def _poll_one(deps: Deps, name: str, limit: asyncio.Semaphore) -> tuple[bool, str]:
    """(ok, summary line) for one source."""
    async with limit:
        try:
            result: PollResult = await run_poll(deps, name)
        except LeaseBusy as exc:
            return True, f"{name}: skipped ({exc})"
        except SourceError as exc:
            return False, f"{name}: FAILED: {exc}"
    kind = "baseline (silent)" if result.baseline else "poll"
    notes = "".join(
        f", {note}"
        for note in (
            result.quarantined and f"{result.quarantined} records quarantined",
            result.removals_held and f"removals held ({result.removals_held} absent)",
            result.state_lost and f"STATE LOST ({result.state_lost})",
        )
        if note
    )
    return True, (
        f"{name}: {kind}: {result.pages} pages, {result.enrollments} enrollments, "
        f"{result.events} events{notes}"
    )


async def poll(deps: Deps, names: Sequence[str], out: TextIO) -> int:
    """Polls the sources concurrently (bounded), prints one line each in the order given."""
    limit = asyncio.Semaphore(POLL_CONCURRENCY)
    outcomes = await asyncio.gather(*(_poll_one(deps, name, limit) for name in names))
    for _, line in outcomes:
        print(line, file=out)
    await deliver_all(deps, out)
    return OK if all(ok for ok, _ in outcomes) else FAILED


async def deliver(deps: Deps, out: TextIO) -> int:
    status = await deliver_all(deps, out)
    if status == OK:
        print("delivery: nothing failed", file=out)
    return status


def _ago(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _source_notes(s: SourceStatus) -> list[str]:
    """Quarantine, held removals and state loss, one line each (SPEC §5, issue 9)."""
    notes = []
    if s.quarantined and s.quarantine_error:
        q = s.quarantine_error
        notes.append(
            f"{s.quarantined} records quarantined; first: enrollment "
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


async def status(deps: Deps, out: TextIO, *, as_json: bool) -> int:
    now_ms = int(time.time() * 1000)
    sources = [await source_status(deps.redis, name) for name in deps.sources]
    destinations = [
        await destination_status(deps.redis, name, sources=list(deps.sources), now_ms=now_ms)
        for name in deps.destinations
    ]
    if as_json:
        doc = {"sources": sources, "destinations": destinations}
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return OK
    print("sources:", file=out)
    for s in sources:
        if s.failing:
            health = f"FAILING, {s.consecutive_failures} failed polls in a row"
        elif s.consecutive_failures:
            health = f"failed, {s.consecutive_failures} in a row"
        else:
            health = s.last_outcome or "never polled"
        print(
            f"  {s.name}: last poll {_ago(s.last_poll_at)} ({health}), "
            f"{s.tracked} enrollments tracked, {s.events_total} events emitted",
            file=out,
        )
        if s.last_error:
            print(f"    last error: {s.last_error}", file=out)
        for line in _source_notes(s):
            print(f"    {line}", file=out)
    print("destinations:", file=out)
    for d in destinations:
        print(
            f"  {d.name}: {d.pending} pending, {d.failing} failing, {d.dead} dead-lettered, "
            f"last success {_ago(d.last_success_at)}",
            file=out,
        )
        if d.last_outcome == "failed":
            print(f"    FAILING: {d.last_error}", file=out)
    return OK


async def check(deps: Deps, out: TextIO, *, send_test: bool) -> int:
    status = OK
    await deps.redis.ping()
    print("redis: ok", file=out)
    for name, runtime in deps.sources.items():
        try:
            await runtime.source.check()
            print(f"source {name}: ok", file=out)
        except SourceError as exc:
            print(f"source {name}: FAILED: {exc}", file=out)
            status = FAILED
    for name, destination in deps.destinations.items():
        if not send_test:
            print(
                f"destination {name}: configured (use --send-test to post a test event)", file=out
            )
            continue
        try:
            await destination.notifier.send([_test_event(name)])
            print(f"destination {name}: test event delivered", file=out)
        except DeliveryError as exc:
            print(f"destination {name}: FAILED: {exc}", file=out)
            status = FAILED
    return status


def _test_event(destination: str) -> OutboundEvent:
    now = datetime.now(UTC)
    state = State(status=Status.ACTIVE, raw_status="test", step=1)
    event = Event(
        id=event_id(
            source="seqwatch-check", enrollment_id="test", event_type="test",
            change_key=f"{destination}|{now.isoformat()}",
        ),
        type=EventType.STATUS_CHANGED,
        source="seqwatch-check",
        provider="seqwatch",
        enrollment_id="test:test",
        sequence=SequenceRef(id="test", name="seqwatch test event"),
        contact=Contact(id="test", name="seqwatch check"),
        previous=state,
        current=state,
        detected_at=now,
    )  # fmt: skip
    return OutboundEvent(id=event.id, body=event.to_json())


async def reset(deps: Deps, name: str, out: TextIO) -> int:
    await StateStore(deps.redis, source=name).reset()
    print(f"{name}: state forgotten; the next poll records a silent baseline", file=out)
    return OK


def _outboxes(deps: Deps, *, destination: str | None, source: str | None) -> list[Outbox]:
    return [
        Outbox(deps.redis, source=s, destination=d)
        for d in deps.destinations
        if destination in (None, d)
        for s in deps.sources
        if source in (None, s)
    ]


async def dead_letters(
    deps: Deps,
    out: TextIO,
    *,
    action: str,
    destination: str | None,
    source: str | None,
    event_type: str | None,
    ids: Sequence[str],
) -> int:
    letters: list[tuple[Outbox, DeadLetter]] = []
    for outbox in _outboxes(deps, destination=destination, source=source):
        for letter in await outbox.dead_letters():
            if event_type and letter.event_type != event_type:
                continue
            if ids and letter.event_id not in ids:
                continue
            letters.append((outbox, letter))
    if action == "list":
        for _, letter in letters:
            print(
                f"{letter.event_id}  {letter.destination}  {letter.source}  {letter.event_type}  "
                f"dead since {_ago(letter.dead_at_ms / 1000)} after {letter.attempts} attempts: "
                f"{scrub(letter.error)}",
                file=out,
            )
        print(f"{len(letters)} dead letters", file=out)
        return OK
    now_ms = int(time.time() * 1000)
    done = 0
    for outbox, letter in letters:
        if action == "replay":
            done += await outbox.replay([letter.event_id], now_ms=now_ms)
        else:
            done += await outbox.drop([letter.event_id])
    verb = "queued for redelivery" if action == "replay" else "dropped"
    print(f"{done} dead letters {verb}", file=out)
    if action == "replay" and done:
        return await deliver_all(deps, out)
    return OK
