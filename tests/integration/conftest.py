"""Fixtures shared by the integration tests that run seqwatch against the fake providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from tests.contract.provider_replyio import ReplyioHarness
from tests.integration._cli_helpers import Fakes, running_fakes


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[Redis]:
    """A client on the suite's Redis, emptied first so every test starts clean."""
    client = Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def reply() -> Iterator[ReplyioHarness]:
    """The Reply.io fake on a local port, with a runtime builder for the source under test."""
    harness = ReplyioHarness()
    harness.start()
    yield harness
    harness.stop()
