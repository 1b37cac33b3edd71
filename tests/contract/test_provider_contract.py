"""One contract, every provider: baseline, transitions, absences; bad input never loses data."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from tests.contract.providers import API_KEY, HARNESSES, PAGE_SIZE, ProviderHarness, Sleeps
from worker.delivery.outbox import Outbox, Route
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.enrollment import Enrollment
from worker.errors import MalformedResponse, SourceError, SourceUnavailable
from worker.normalize import ProviderNormalizer
from worker.sources.base import RawPage
from worker.store import keys
from worker.store.state import StateStore

SOURCE = "contract-src"
SINK = "sink"
ROUTES = (Route(destination=SINK, events=("*",), sources=()),)


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    h = HARNESSES[request.param]()
    h.start()
    yield h
    h.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def runtime(harness: ProviderHarness, sleeps: Sleeps) -> SourceRuntime:
    return harness.runtime(name=SOURCE, sleep=sleeps)


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=lambda: datetime.now(UTC))


async def drain(store: Redis) -> list[dict[str, Any]]:
    """Every pending event for the sink, in commit order, then acknowledged."""
    outbox = Outbox(store, source=SOURCE, destination=SINK)
    due = await outbox.due_now(now_ms=2**52, limit=10_000)
    await outbox.ack([event_id for event_id, _ in due])
    return [orjson.loads(body) for _, body in due if body is not None]


def types(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((e["data"]["enrollment_id"], e["type"]) for e in events)


async def snapshot(store: Redis) -> dict[str, dict[str, str]]:
    return {"state": await StateStore(store, source=SOURCE).stored()}


@pytest.fixture
async def baselined(store: Redis, harness: ProviderHarness, runtime: SourceRuntime) -> list[str]:
    ids = harness.seed(PAGE_SIZE * 2 + 2)  # three pages
    result = await poll(store, runtime)
    assert result.baseline
    assert result.pages >= 3
    return ids


async def test_baseline_is_silent_and_tracks_everything(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime
) -> None:
    ids = harness.seed(PAGE_SIZE * 2 + 2)
    result = await poll(store, runtime)
    assert result.baseline
    assert result.enrollments == len(ids)
    assert result.events == 0
    assert await drain(store) == []
    assert int(await store.hget(keys.meta(SOURCE), "tracked") or 0) == len(ids)  # type: ignore[misc]


async def test_unchanged_repoll_is_silent(
    store: Redis, runtime: SourceRuntime, baselined: list[str]
) -> None:
    for _ in range(2):
        result = await poll(store, runtime)
        assert not result.baseline
        assert result.events == 0
    assert await drain(store) == []


async def test_each_change_emits_exactly_its_event(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    a, b, c = baselined[0], baselined[PAGE_SIZE], baselined[-1]
    new = harness.enroll()
    harness.finish(a)
    harness.pause(c)
    expected = [
        (new, "enrollment.enrolled"),
        (a, "enrollment.finished"),
        (c, "enrollment.paused"),
    ]
    if "opted_out" in harness.signals:
        harness.opt_out(b)
        expected.append((b, "enrollment.opted_out"))
    await poll(store, runtime)
    events = await drain(store)
    assert types(events) == sorted(expected)
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["enrollment.enrolled"]["previous"] is None
    assert by_type["enrollment.finished"]["previous"]["status"] == "active"
    assert by_type["enrollment.finished"]["current"]["status"] == "finished"
    if "opted_out" in harness.signals:
        assert by_type["enrollment.opted_out"]["current"]["opted_out"] is True
    else:
        assert by_type["enrollment.finished"]["current"]["opted_out"] is None
    assert all(e["data"]["provider"] == harness.provider for e in events)
    assert len({e["data"]["id"] for e in events}) == len(events)

    harness.resume(c)
    await poll(store, runtime)
    assert types(await drain(store)) == [(c, "enrollment.resumed")]
    await poll(store, runtime)
    assert await drain(store) == []


async def test_events_carry_the_step_count_where_the_provider_has_one(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    new = harness.enroll()
    harness.finish(baselined[0])
    await poll(store, runtime)
    events = await drain(store)
    assert types(events) == sorted([(new, "enrollment.enrolled"),
                                    (baselined[0], "enrollment.finished")])  # fmt: skip
    for event in events:
        sequence = event["data"]["sequence"]
        if harness.steps_total is None:
            assert set(sequence) == {"id", "name"}  # exactly the SPEC keys
        else:
            assert sequence["steps_total"] == harness.steps_total


async def test_the_step_count_only_describes(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    """A sequence that gains or loses steps is no change: steps_total is neither stored nor
    diffed, so it moves no event, no stored byte and no later event id."""
    normalize = runtime.normalize

    def counted(total: int) -> SourceRuntime:
        def normalized(record: Any, *, page: RawPage) -> Enrollment:
            enrollment = normalize(record, page=page)
            sequence = dataclasses.replace(enrollment.sequence, steps_total=total)
            return dataclasses.replace(enrollment, sequence=sequence)

        # No peek: every record takes the full path, so each one meets the new total.
        return dataclasses.replace(runtime, normalize=ProviderNormalizer(normalized))

    before = await snapshot(store)
    for total in (7, 2):
        result = await poll(store, counted(total))
        assert (result.events, result.enrollments) == (0, len(baselined))
        assert await snapshot(store) == before
    harness.finish(baselined[0])
    await poll(store, counted(9))
    (event,) = await drain(store)
    assert event["data"]["sequence"]["steps_total"] == 9
    assert event["data"]["current"]["status"] == "finished"


async def test_absence_removes_only_after_two_complete_listings(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    gone = baselined[3]
    harness.delete(gone)
    await poll(store, runtime)
    assert await drain(store) == []
    await poll(store, runtime)
    events = await drain(store)
    assert types(events) == [(gone, "enrollment.removed")]
    assert events[0]["data"]["current"] is None
    assert events[0]["data"]["previous"]["status"] == "active"
    await poll(store, runtime)
    assert await drain(store) == []


FAULTS: list[tuple[str, dict[str, Any], type[SourceError] | None]] = [
    ("status", {"status": 500, "times": 10}, SourceUnavailable),
    ("status", {"status": 503, "times": 10}, SourceUnavailable),
    ("rate_limit", {"times": 10}, SourceUnavailable),
    ("reset", {"times": 10}, SourceUnavailable),
    ("timeout", {"delay": 3.0, "times": 10}, SourceUnavailable),
    ("malformed_json", {}, MalformedResponse),
    ("empty_page", {}, None),  # may be legal (cursor APIs): then the listing must be complete
    ("repeat_cursor", {}, MalformedResponse),
]


@pytest.mark.parametrize(("kind", "options", "error"), FAULTS, ids=lambda v: str(v))
async def test_a_failed_listing_changes_nothing_it_did_not_see(
    store: Redis,
    harness: ProviderHarness,
    runtime: SourceRuntime,
    baselined: list[str],
    kind: str,
    options: dict[str, Any],
    error: type[SourceError] | None,
) -> None:
    # A change on page 3 (not reached) and an enrollment that vanished: neither may be acted on.
    late, gone = baselined[-1], baselined[-2]
    await poll(store, runtime)  # one complete listing: `gone` has been seen twice before
    harness.finish(late)
    harness.delete(gone)
    before = await snapshot(store)
    harness.faults.add(kind, path_contains=harness.listing_path, after=1, **options)

    try:
        await poll(store, runtime)
        raised: SourceError | None = None
    except SourceError as exc:
        raised = exc
    if raised is None:
        # Only a survivable anomaly may pass, and then the listing must be complete and exact.
        assert error is None
        assert types(await drain(store)) == [(late, "enrollment.finished")]
    else:
        assert isinstance(raised, error or MalformedResponse)
        message = str(raised)
        assert message.startswith(f"source {SOURCE!r}: ")
        assert "page" in message or "skip=" in message
        assert API_KEY not in message
        assert "\n" not in message
        # Pages served before the fault are real data and may be committed (a repeated cursor
        # is only noticed after its page); the vanished enrollment must not be touched.
        during = await drain(store)
        assert types(during) in ([], [(late, "enrollment.finished")])
        after = await snapshot(store)
        assert after["state"][gone] == before["state"][gone]
        harness.faults.clear()
        harness.faults.wake()
        await poll(store, runtime)
        assert types(during + await drain(store)) == [(late, "enrollment.finished")]
    await poll(store, runtime)
    assert types(await drain(store)) == [(gone, "enrollment.removed")]


async def test_rate_limit_with_retry_after_is_honoured_inside_the_poll(
    store: Redis,
    harness: ProviderHarness,
    runtime: SourceRuntime,
    sleeps: Sleeps,
    baselined: list[str],
) -> None:
    harness.finish(baselined[0])
    harness.faults.add("rate_limit", path_contains=harness.listing_path, retry_after=7)
    result = await poll(store, runtime)
    assert 7 in sleeps.waits
    assert types(await drain(store)) == [(baselined[0], "enrollment.finished")]
    assert result.events == 1


async def test_unknown_status_value_is_kept_raw_without_crashing(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    target = baselined[1]
    harness.set_raw_status(target, "SNOOZED_BY_VENDOR")
    await poll(store, runtime)
    events = await drain(store)
    assert all(e["data"]["current"]["raw_status"] == "SNOOZED_BY_VENDOR" for e in events)
    await poll(store, runtime)
    assert await drain(store) == []


@pytest.fixture(
    params=sorted(n for n, h in HARNESSES.items() if "opted_out" in getattr(h, "signals", ()))
)
def opting_out_harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    """Providers where one change can imply two events (opted out, then finished)."""
    h = HARNESSES[request.param]()
    h.start()
    yield h
    h.stop()


async def test_one_change_reaches_a_destination_in_detection_order(
    store: Redis, opting_out_harness: ProviderHarness, sleeps: Sleeps
) -> None:
    """The two events of one change share their detection millisecond: their order in the
    outbox is the order they were detected in, not the order of their ids."""
    harness = opting_out_harness
    runtime = harness.runtime(name=SOURCE, sleep=sleeps)
    ids = harness.seed(12)
    await poll(store, runtime)
    for enrollment_id in ids:
        harness.opt_out(enrollment_id)
        harness.finish(enrollment_id)
    await poll(store, runtime)
    seen: dict[str, list[str]] = {}
    for event in await drain(store):
        seen.setdefault(event["data"]["enrollment_id"], []).append(event["type"])
    expected = ["enrollment.opted_out", "enrollment.finished"]
    assert seen == {enrollment_id: expected for enrollment_id in ids}
