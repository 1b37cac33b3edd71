"""The Zendesk Sell harness for the provider contract suite.

providers.py imports this module to fill HARNESSES, so its constants are read lazily here
(importing them at module level would be an import cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.zendesk_sell import ZendeskSellApp, ZendeskSellWorld
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.zendesk_sell import ZendeskSellSource, error_text


class ZendeskSellHarness:
    provider = "zendesk_sell"
    signals: frozenset[str] = frozenset()  # Sell exposes no replied/bounced/opted-out signal
    listing_path = "/v2/sequence_enrollments"
    bad_field = "state"
    steps_total: int | None = 5  # the sequence summary: add_sequence(steps=5) below

    def __init__(self, *, links: bool = False) -> None:
        """`links`: whether listings carry `meta.links` (the official fixture has none)."""
        from tests.contract import providers  # lazy: see the module docstring

        self._key = providers.API_KEY
        self._page_size = providers.PAGE_SIZE
        self.world = ZendeskSellWorld()
        self.faults = FaultPlan()
        app = ZendeskSellApp(self.world, api_key=self._key, faults=self.faults, links=links)
        self.server = FakeServer(app)
        self.http = httpx.AsyncClient(timeout=1.0)
        self.sequence = self.world.add_sequence("Contract sequence", steps=5)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.faults.wake()
        self.server.stop()

    def runtime(self, *, name: str, sleep: Callable[[float], Awaitable[None]]) -> SourceRuntime:
        client = ProviderClient(
            source=name,
            http=self.http,
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {self._key}"},
            limiter=PacingLimiter(per_second=10_000),
            sleep=sleep,
            max_attempts=3,
            describe_error=lambda doc: error_text(doc, secrets=(self._key,)),
        )
        source = ZendeskSellSource(
            name=name, client=client, sequences=(), page_size=self._page_size
        )
        return SourceRuntime(
            name=name, provider=self.provider, source=source, normalize=NORMALIZERS[self.provider]
        )

    def enroll(self) -> str:
        return str(self.world.enroll(self.sequence))

    def seed(self, count: int) -> list[str]:
        return [self.enroll() for _ in range(count)]

    def finish(self, enrollment_id: str) -> None:
        self.world.finish(int(enrollment_id), reason="manual")

    def opt_out(self, enrollment_id: str) -> None:
        raise NotImplementedError("Zendesk Sell exposes no opt-out signal")

    def pause(self, enrollment_id: str) -> None:
        self.world.block(int(enrollment_id))  # Sell's only halted state

    def resume(self, enrollment_id: str) -> None:
        self.world.resume(int(enrollment_id))

    def delete(self, enrollment_id: str) -> None:
        self.world.delete(int(enrollment_id))

    def set_raw_status(self, enrollment_id: str, value: str) -> None:
        self.world.set_state(int(enrollment_id), value)


class ZendeskSellLinksHarness(ZendeskSellHarness):
    """The same contract where Sell sends `meta.links` (README §1.9's example does)."""

    def __init__(self) -> None:
        super().__init__(links=True)
