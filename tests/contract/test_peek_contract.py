"""Every provider's `peek` agrees with its full normalizer on the records its real Source lists
from its fake (tests/_peek.py), through every kind of change the contract makes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._peek import agrees
from tests.contract.providers import HARNESSES, ProviderHarness, Sleeps


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[ProviderHarness]:
    h = HARNESSES[request.param]()
    h.start()
    yield h
    h.stop()


async def test_peek_agrees_on_every_listed_record(harness: ProviderHarness) -> None:
    ids = harness.seed(8)
    harness.finish(ids[0])
    if "opted_out" in harness.signals:
        harness.opt_out(ids[1])
    harness.pause(ids[2])
    harness.pause(ids[3])
    harness.resume(ids[3])
    harness.set_raw_status(ids[4], "SomethingNew")
    runtime = harness.runtime(name="peek", sleep=Sleeps())
    read = 0
    async for page in runtime.source.pages():
        for record in page.records:
            assert agrees(runtime.provider, record, page), "peek declined a listed record"
            read += 1
    assert read == len(ids)
