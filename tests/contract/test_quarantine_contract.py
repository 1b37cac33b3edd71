"""Quarantine (SPEC §5), every provider: one bad record never stalls a source."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from tests.contract import test_provider_contract as contract
from tests.contract.providers import ProviderHarness
from tests.contract.test_provider_contract import SOURCE, drain, poll, snapshot, types
from worker.detect.pipeline import SourceRuntime
from worker.errors import MalformedResponse
from worker.ops.status import source_status
from worker.store import keys

# The provider contract's fixtures, shared.
harness = contract.harness
sleeps = contract.sleeps
runtime = contract.runtime
baselined = contract.baselined


def spoil_first_record(harness: ProviderHarness) -> None:
    harness.faults.add("missing_field", path_contains=harness.listing_path, field=harness.bad_field)


def quarantine_logs(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "record_quarantined"]


async def test_a_bad_record_is_skipped_counted_and_logged_once_and_the_rest_committed(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    late, gone = baselined[-1], baselined[-2]
    harness.finish(late)
    harness.delete(gone)
    before = await snapshot(store)
    # The first record of the first listing page loses a required field, on two polls.
    spoil_first_record(harness)
    with capture_logs() as logs:
        first = await poll(store, runtime)
    assert first.quarantined == 1
    assert first.full_listing
    status = await source_status(store, SOURCE)
    assert status.quarantined == 1
    assert status.quarantine_error is not None
    bad = status.quarantine_error["enrollment_id"]
    assert bad in baselined
    assert harness.bad_field in str(status.quarantine_error["field"])
    assert harness.bad_field in str(status.quarantine_error["error"])
    [logged] = quarantine_logs(logs)
    assert (logged["enrollment_id"], logged["log_level"]) == (bad, "warning")
    # The rest of the listing is committed, its absences counted as usual.
    assert types(await drain(store)) == [(late, "enrollment.finished")]

    spoil_first_record(harness)
    with capture_logs() as logs:
        second = await poll(store, runtime)
    assert second.quarantined == 1
    assert quarantine_logs(logs) == []  # the same error is logged once, not per poll
    assert types(await drain(store)) == [(gone, "enrollment.removed")]
    # Untouched and seen: never rewritten, never marked absent.
    assert (await snapshot(store))["state"][bad] == before["state"][bad]

    harness.pause(bad)
    third = await poll(store, runtime)
    assert third.quarantined == 0
    assert types(await drain(store)) == [(bad, "enrollment.paused")]
    assert await store.hlen(keys.quarantine(SOURCE)) == 0  # type: ignore[misc]
    status = await source_status(store, SOURCE)
    assert (status.quarantined, status.quarantine_error) == (0, None)


async def test_a_record_whose_id_cannot_be_read_makes_the_listing_incomplete(
    store: Redis, harness: ProviderHarness, runtime: SourceRuntime, baselined: list[str]
) -> None:
    late, gone = baselined[-1], baselined[-2]
    await poll(store, runtime)
    harness.finish(late)
    harness.delete(gone)
    before = await snapshot(store)
    # Page 2's first record loses its id, on two polls: neither may remove anything.
    harness.faults.add("missing_field", path_contains=harness.listing_path, after=1, times=1)
    result = await poll(store, runtime)
    harness.faults.add("missing_field", path_contains=harness.listing_path, after=1, times=1)
    again = await poll(store, runtime)
    assert (result.quarantined, again.quarantined) == (1, 1)
    assert not result.full_listing
    # Whippy leaves the whole sequence of an unfoldable row as stored until it reads again.
    during = await drain(store)
    assert types(during) in ([], [(late, "enrollment.finished")])
    assert (await snapshot(store))["state"][gone] == before["state"][gone]
    status = await source_status(store, SOURCE)
    assert status.quarantine_error is not None
    assert status.quarantine_error["enrollment_id"] is None

    await poll(store, runtime)  # complete again: absent once
    assert types(during + await drain(store)) == [(late, "enrollment.finished")]
    await poll(store, runtime)
    assert types(await drain(store)) == [(gone, "enrollment.removed")]


@pytest.mark.parametrize("kind", ["malformed_json"])
async def test_a_malformed_page_still_fails_the_poll(
    store: Redis,
    harness: ProviderHarness,
    runtime: SourceRuntime,
    baselined: list[str],
    kind: str,
) -> None:
    before = await snapshot(store)
    harness.faults.add(kind, path_contains=harness.listing_path)
    with pytest.raises(MalformedResponse):
        await poll(store, runtime)
    assert await snapshot(store) == before
