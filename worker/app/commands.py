"""The async bodies of the CLI commands; each returns an exit status and prints a summary."""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

import orjson

from notifiers.base import OutboundEvent
from worker.app.deps import Deps
from worker.app.service import run_deliver, run_poll
from worker.delivery.outbox import DeadLetter, Outbox
from worker.detect.pipeline import LeaseBusy, PollResult
from worker.errors import DeliveryError, SourceError
from worker.events import event_id, format_timestamp, matches_any
from worker.redaction import scrub
from worker.store.state import StateStore
from worker.wording import plural

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
            result.quarantined and f"{plural(result.quarantined, 'record')} quarantined",
            result.removals_held and f"removals held ({result.removals_held} absent)",
            result.state_lost and f"STATE LOST ({result.state_lost})",
        )
        if note
    )
    return True, (
        f"{name}: {kind}: {plural(result.pages, 'page')}, "
        f"{plural(result.enrollments, 'enrollment')}, {plural(result.events, 'event')}{notes}"
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


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


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
    filters = {route.destination: route for route in deps.routes}
    for name, destination in deps.destinations.items():
        if not send_test:
            print(
                f"destination {name}: configured (use --send-test to post a test event)", file=out
            )
            continue
        try:
            await destination.notifier.send([check_event(name, now=datetime.now(UTC))])
        except DeliveryError as exc:
            print(f"destination {name}: FAILED: {exc}", file=out)
            status = FAILED
            continue
        note = ""
        route = filters.get(name)
        if route is not None and not matches_any(TEST_EVENT_TYPE, route.events):
            # --send-test checks every destination; its events filter applies to real events.
            note = " (sent although its events filter does not select seqwatch.test)"
        print(f"destination {name}: test event delivered{note}", file=out)
    return status


TEST_EVENT_TYPE = "seqwatch.test"


def check_event(destination: str, *, now: datetime) -> OutboundEvent:
    """A `seqwatch.test` document (never an enrollment.* type: consumers must not act on it)."""
    stamp = format_timestamp(now)
    event = event_id(
        source="", enrollment_id="", event_type=TEST_EVENT_TYPE,
        change_key=f"{destination}|{now.isoformat()}|{secrets.token_hex(8)}",
    )  # fmt: skip
    document = {
        "type": TEST_EVENT_TYPE,
        "timestamp": stamp,
        "data": {
            "id": event,
            "destination": destination,
            "message": f"Test event from seqwatch check --send-test to {destination}.",
            "detected_at": stamp,
        },
    }
    return OutboundEvent(id=event, body=orjson.dumps(document))


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
    err: TextIO = sys.stderr,
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
    missing = sorted(set(ids) - {letter.event_id for _, letter in letters})
    if missing:
        print(
            f"seqwatch: no dead letter {missing[0]!r} matches"
            + (f" (and {plural(len(missing) - 1, 'other id')})" if len(missing) > 1 else ""),
            file=err,
        )
        return FAILED
    if action == "list":
        for _, letter in letters:
            print(
                f"{letter.event_id}  {letter.destination}  {letter.source}  {letter.event_type}  "
                f"dead since {_iso(datetime.fromtimestamp(letter.dead_at_ms / 1000, UTC))} "
                f"after {plural(letter.attempts, 'attempt')}: {scrub(letter.error)}",
                file=out,
            )
        print(plural(len(letters), "dead letter"), file=out)
        return OK
    now_ms = int(time.time() * 1000)
    done = 0
    for outbox, letter in letters:
        if action == "replay":
            done += await outbox.replay([letter.event_id], now_ms=now_ms)
        else:
            done += await outbox.drop([letter.event_id])
    verb = "queued for redelivery" if action == "replay" else "dropped"
    print(f"{plural(done, 'dead letter')} {verb}", file=out)
    if action == "replay" and done:
        return await deliver_all(deps, out)
    return OK
