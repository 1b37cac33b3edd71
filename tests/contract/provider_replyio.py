"""Reply.io's ProviderHarnesses: the fake Reply.io API, the real ReplyioSource, by intent.

Two accounts: one answering v3 and v4 (the source detects v3, Reply's current public API) and
a v4-only one (v3 answers 404, so detection falls back to v4). Registered in
tests/contract/providers.py; this module must not import it (a cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.replyio import VERSIONS, ContactStatus, ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.detect.pipeline import SourceRuntime
from worker.normalize import NORMALIZERS
from worker.sources import replyio
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter

API_KEY = "sk-contract-SECRET-4242"  # the value of providers.API_KEY
PAGE_SIZE = 5  # likewise providers.PAGE_SIZE
SEQUENCE = 100


class ReplyioHarness:
    provider = "replyio"
    steps_total: int | None = None  # steps only in the per-sequence GET, never read
    signals = frozenset({"opted_out", "replied", "bounced"})
    version = "v3"
    versions = VERSIONS

    def __init__(self) -> None:
        self.world = ReplyioWorld()
        self.faults = FaultPlan()
        self.app = ReplyioApp(
            self.world, api_key=API_KEY, faults=self.faults, versions=self.versions
        )
        self.server = FakeServer(self.app)
        self.http = httpx.AsyncClient(timeout=1.0)
        self.listing_path = f"/{self.version}/sequences/{SEQUENCE}/contacts"
        # A required field other than the ids (quarantine tests).
        self.bad_field = "statusInSequence" if self.version == "v3" else "status"
        self._next = 1000
        self.world.add_sequence(SEQUENCE, "Contract sequence", steps=5)

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
            headers=replyio.auth_headers(API_KEY),
            limiter=PacingLimiter(per_second=10_000),
            sleep=sleep,
            max_attempts=3,
        )
        source = replyio.ReplyioSource(name=name, client=client, sequences=(), page_size=PAGE_SIZE)
        return SourceRuntime(
            name=name, provider=self.provider, source=source, normalize=NORMALIZERS[self.provider]
        )

    def enroll(self) -> str:
        self._next += 1
        self.world.add_contact(
            SEQUENCE,
            self._next,
            email=f"c{self._next}@example.com",
            first="Contact",
            last=str(self._next),
            company="Acme",
        )
        return f"{SEQUENCE}:{self._next}"

    def seed(self, count: int) -> list[str]:
        return [self.enroll() for _ in range(count)]

    def finish(self, enrollment_id: str) -> None:
        self.world.set_status(*_ids(enrollment_id), ContactStatus.FINISHED)

    def opt_out(self, enrollment_id: str) -> None:
        self.world.opt_out(*_ids(enrollment_id))

    def pause(self, enrollment_id: str) -> None:
        self.world.set_status(*_ids(enrollment_id), ContactStatus.PAUSED)

    def resume(self, enrollment_id: str) -> None:
        self.world.set_status(*_ids(enrollment_id), ContactStatus.ACTIVE)

    def delete(self, enrollment_id: str) -> None:
        self.world.remove_contact(*_ids(enrollment_id))

    def set_raw_status(self, enrollment_id: str, value: str) -> None:
        self.world.raw(*_ids(enrollment_id))["status"] = value  # the world's own record


class ReplyioV4Harness(ReplyioHarness):
    """An account that answers only v4: the source's detection falls back to it."""

    signals = frozenset({"opted_out"})  # v4 has no reply or bounce signal
    version = "v4"
    versions = frozenset({"v4"})


def _ids(enrollment_id: str) -> tuple[int, int]:
    sequence, _, contact = enrollment_id.partition(":")
    return int(sequence), int(contact)
