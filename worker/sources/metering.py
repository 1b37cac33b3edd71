"""Counts the provider requests one poll sends (every attempt, retries included).

The count travels in a context variable, so every provider client is metered without being
handed anything, and concurrent polls (one asyncio task each) never share a meter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class RequestMeter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


_current: ContextVar[RequestMeter | None] = ContextVar("seqwatch_request_meter", default=None)


@contextmanager
def metering() -> Iterator[RequestMeter]:
    """Meters the provider requests sent inside the block, in this task."""
    meter = RequestMeter()
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def count_request() -> None:
    meter = _current.get()
    if meter is not None:
        meter.count += 1
