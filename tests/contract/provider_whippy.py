"""Whippy's ProviderHarness: the fake Whippy API, the real WhippySource, changes by intent.

Registered in tests/contract/providers.py; this module must not import it (a cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.unify import ManualClock
from worker.demo.fakes.whippy import StepStatus, WhippyApp, WhippyWorld
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.sources import whippy
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter

API_KEY = "sk-contract-SECRET-4242"  # the value of providers.API_KEY (checked by a test)
PAGE_SIZE = 5  # likewise providers.PAGE_SIZE
STEPS = 3


class WhippyHarness:
    """Three three-step sequences: the source yields one page per sequence, so a seeded
    listing has three. Every contact sits on the last step (three rows, which page size 5
    splits across API pages: a sequence of four contacts takes three), so finishing it
    finishes the enrollment without a step advance."""

    provider = "whippy"
    signals = frozenset({"opted_out", "replied"})
    bad_field = "updated_at"
    steps_total: int | None = STEPS  # from GET /v1/sequences/{id}, which the source reads anyway

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.world = WhippyWorld(clock=self.clock)
        self.faults = FaultPlan()
        self.server = FakeServer(WhippyApp(self.world, api_key=API_KEY, faults=self.faults))
        self.http = httpx.AsyncClient(timeout=1.0)
        self.sequences = [
            self.world.add_sequence(f"Contract sequence {n}", steps=STEPS) for n in (1, 2, 3)
        ]
        self.listing_path = f"/v1/sequences/{self.sequences[0]}/contacts"
        self._n = 0

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
            headers={whippy.AUTH_HEADER: API_KEY},
            limiter=PacingLimiter(per_second=10_000),
            sleep=sleep,
            max_attempts=3,
            retry_after_ms_header=whippy.RETRY_MS_HEADER,
            describe_error=whippy.error_text,
        )
        source = whippy.WhippySource(name=name, client=client, sequences=(), page_size=PAGE_SIZE)
        return SourceRuntime(
            name=name, provider=self.provider, source=source, normalize=NORMALIZERS[self.provider]
        )

    def enroll(self) -> str:
        self._n += 1
        self.clock.advance(1)
        sequence = self.sequences[self._n % len(self.sequences)]
        contact = self.world.add_contact(
            sequence, name=f"Contact {self._n}", email=f"c{self._n}@example.com", step=STEPS
        )
        return f"{sequence}:{contact}"

    def seed(self, count: int) -> list[str]:
        return [self.enroll() for _ in range(count)]

    def _set(self, enrollment_id: str, status: str) -> None:
        self.clock.advance(1)
        self.world.set_status(*_ids(enrollment_id), status)

    def finish(self, enrollment_id: str) -> None:
        self._set(enrollment_id, StepStatus.COMPLETE)

    def opt_out(self, enrollment_id: str) -> None:
        self.clock.advance(1)
        self.world.unsubscribe(*_ids(enrollment_id))

    def pause(self, enrollment_id: str) -> None:
        self._set(enrollment_id, StepStatus.INACTIVE)

    def resume(self, enrollment_id: str) -> None:
        self._set(enrollment_id, StepStatus.ACTIVE)

    def delete(self, enrollment_id: str) -> None:
        self.world.hard_delete(*_ids(enrollment_id))

    def set_raw_status(self, enrollment_id: str, value: str) -> None:
        self._set(enrollment_id, value)


def _ids(enrollment_id: str) -> tuple[str, str]:
    sequence, _, contact = enrollment_id.partition(":")
    return sequence, contact
