"""One harness per provider: its fake server, its real Source, and world changes by intent.

The contract tests are written once against `ProviderHarness`; every provider runs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from tests.contract.provider_replyio import ReplyioHarness, ReplyioV4Harness
from tests.contract.provider_whippy import WhippyHarness
from tests.contract.provider_zendesk_sell import ZendeskSellHarness, ZendeskSellLinksHarness
from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.unify import ManualClock, UnifyApp, UnifyWorld
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.unify import UnifySource

API_KEY = "sk-contract-SECRET-4242"
PAGE_SIZE = 5


@dataclass(slots=True)
class Sleeps:
    """Stands in for asyncio.sleep in provider retries: records the waits, never waits."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class ProviderHarness(Protocol):
    provider: str
    faults: FaultPlan
    # Which optional signals the provider exposes (SPEC §5): "opted_out", "replied", ...
    signals: frozenset[str]
    listing_path: str  # requests to this path list enrollments (the target of page faults)
    # A required raw field (not the id) whose absence fails normalization of that record.
    bad_field: str
    # The step count events carry as sequence.steps_total (None: the provider has none).
    steps_total: int | None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def runtime(self, *, name: str, sleep: Callable[[float], Awaitable[None]]) -> SourceRuntime: ...
    def seed(self, count: int) -> list[str]:
        """Creates `count` active enrollments (several pages); returns their enrollment ids."""
        ...

    def enroll(self) -> str: ...
    def finish(self, enrollment_id: str) -> None: ...
    def opt_out(self, enrollment_id: str) -> None: ...
    def pause(self, enrollment_id: str) -> None: ...
    def resume(self, enrollment_id: str) -> None: ...
    def delete(self, enrollment_id: str) -> None:
        """The enrollment disappears from listings (no provider flag)."""
        ...

    def set_raw_status(self, enrollment_id: str, value: str) -> None:
        """Puts a status value the provider does not document on the enrollment."""
        ...


def _client(
    source: str,
    base_url: str,
    header: str,
    http: httpx.AsyncClient,
    sleep: Callable[[float], Awaitable[None]],
) -> ProviderClient:
    return ProviderClient(
        source=source,
        http=http,
        base_url=base_url,
        headers={header: API_KEY},
        limiter=PacingLimiter(per_second=10_000),
        sleep=sleep,
        max_attempts=3,
    )


class UnifyHarness:
    provider = "unify"
    steps_total: int | None = None  # the enrollment has no step, so no count either
    signals = frozenset({"opted_out", "replied", "bounced"})
    listing_path = "/sequences/v1/enrollments"
    bad_field = "person"

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.world = UnifyWorld(clock=self.clock)
        self.faults = FaultPlan()
        self.server = FakeServer(UnifyApp(self.world, api_key=API_KEY, faults=self.faults))
        self.http = httpx.AsyncClient(timeout=1.0)
        self.sequence = self.world.add_sequence("Contract sequence")
        self._n = 0

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.faults.wake()
        self.server.stop()

    def runtime(self, *, name: str, sleep: Callable[[float], Awaitable[None]]) -> SourceRuntime:
        client = _client(name, self.server.base_url, "x-api-key", self.http, sleep)
        source = UnifySource(name=name, client=client, sequences=(), page_size=PAGE_SIZE)
        # Every poll a full listing, so absence rules apply as for the other providers.
        return SourceRuntime(
            name=name,
            provider=self.provider,
            source=source,
            normalize=NORMALIZERS[self.provider],
            full_sync_interval=0,
        )

    def _update(self, enrollment_id: str, **fields: object) -> None:
        self.clock.advance(1)
        self.world.update(enrollment_id, **fields)

    def enroll(self) -> str:
        self._n += 1
        self.clock.advance(1)
        return self.world.enroll(
            self.sequence,
            email=f"p{self._n}@example.com",
            first_name="Person",
            last_name=str(self._n),
        )

    def seed(self, count: int) -> list[str]:
        return [self.enroll() for _ in range(count)]

    def finish(self, enrollment_id: str) -> None:
        self._update(enrollment_id, status="FINISHED")

    def opt_out(self, enrollment_id: str) -> None:
        self._update(enrollment_id, is_opted_out=True)

    def pause(self, enrollment_id: str) -> None:
        self._update(enrollment_id, is_paused=True)

    def resume(self, enrollment_id: str) -> None:
        self._update(enrollment_id, is_paused=False)

    def delete(self, enrollment_id: str) -> None:
        self.world.hard_delete(enrollment_id)

    def set_raw_status(self, enrollment_id: str, value: str) -> None:
        self.world._rows[enrollment_id][1]["status"] = value
        self.clock.advance(1)
        self.world.touch(enrollment_id)


HARNESSES: dict[str, Callable[[], ProviderHarness]] = {
    "replyio": ReplyioHarness,
    "replyio_v4": ReplyioV4Harness,
    "unify": UnifyHarness,
    "whippy": WhippyHarness,
    "zendesk_sell": ZendeskSellHarness,
    "zendesk_sell_links": ZendeskSellLinksHarness,
}
