"""What a provider's `build` receives: the configured source, its HTTP client, its memory.

Provider modules import this, never the registry (which imports them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx

from worker.sources.limiter import RateLimiter

if TYPE_CHECKING:
    from worker.sources.base import Source
    from worker.sources.shared_limiter import Quota


class SourceMemory(Protocol):
    """A few small facts a source keeps between polls (e.g. the detected API version).

    Not enrollment state: losing it costs a re-detection, never an event.
    """

    async def get(self, key: str) -> str | None: ...
    async def get_many(self, *keys: str) -> list[str | None]: ...
    async def set(self, key: str, value: str) -> None: ...
    async def forget(self, key: str) -> None: ...


class LocalMemory:
    """SourceMemory in this process only (unit tests, one-off tools)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def get_many(self, *keys: str) -> list[str | None]:
        return [self.values.get(key) for key in keys]

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def forget(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceParams:
    """What one configured source needs at runtime; `base_url=None` means the default."""

    name: str
    api_key: str = field(repr=False)
    base_url: str | None
    sequences: tuple[str, ...]
    http: httpx.AsyncClient = field(repr=False)
    limiter: RateLimiter | None = None  # None: an in-process pacer at the provider's rate
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    timeout: float | None = None  # per request; None: the HTTP client's own
    memory: SourceMemory | None = field(default=None, repr=False)  # None: this process only
    full_sync_interval: float = 86_400.0  # how often rarely-changing parts are listed too
    api_version: str = "auto"  # replyio only: "auto" | "v3" | "v4"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderInfo:
    """What the registry knows of one provider: data its module declares as `PROVIDER`."""

    slug: str
    default_base_url: str
    requests_per_second: float
    incremental: bool
    build: Callable[[SourceParams], Source] = field(repr=False)
    # The documented quota windows, shared by every worker through Redis.
    quotas: tuple[Quota, ...] = ()
