"""Request pacing for provider APIs.

`RateLimiter` is deliberately one method so a limiter shared through Redis by every worker
can replace the in-process `PacingLimiter` without touching the HTTP layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Return when one more request may be sent."""
        ...


@runtime_checkable
class Deferrable(Protocol):
    """A limiter that can hold every caller back when the provider asks (Retry-After)."""

    async def defer(self, seconds: float) -> None: ...


@runtime_checkable
class Windowed(Protocol):
    """A limiter that knows the provider's quota windows (seconds), shortest first: after a
    429 that names no delay, waiting out a window is what gives the quota room again."""

    @property
    def windows(self) -> tuple[float, ...]: ...


class PacingLimiter:
    """GCRA pacer: requests leave at most `per_second` apart, after an optional burst.

    The slot is reserved before sleeping, so concurrent callers in one event loop queue up
    behind each other instead of all waking at the same instant.
    """

    __slots__ = ("_clock", "_interval", "_sleep", "_tat", "_tolerance")

    def __init__(
        self,
        *,
        per_second: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._interval = 1.0 / per_second
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._tat: float | None = None  # theoretical arrival time of the next request

    async def acquire(self) -> None:
        now = self._clock()
        tat = now if self._tat is None else max(self._tat, now)
        wait = tat - self._tolerance - now
        self._tat = tat + self._interval
        if wait > 0:
            await self._sleep(wait)

    def __repr__(self) -> str:
        return f"PacingLimiter(per_second={1.0 / self._interval:g})"
