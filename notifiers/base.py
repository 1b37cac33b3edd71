"""The one extension point for destinations: a Notifier sends a batch of stored events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundEvent:
    """An event as stored in the outbox: its stable id and the exact JSON document."""

    id: str
    body: bytes


class Pacer(Protocol):
    """Spaces out sends to one peer; shared by every worker when backed by Redis."""

    async def acquire(self) -> None: ...


class Notifier(Protocol):
    """Delivers events to one destination.

    `send` either delivers the whole batch or raises DeliveryRetriable / DeliveryPermanent
    (worker.errors). Error messages never contain the destination URL or secret.
    """

    @property
    def max_batch(self) -> int:
        """How many events one `send` may take (1 for webhooks; more for digests)."""
        ...

    async def send(self, events: Sequence[OutboundEvent]) -> None: ...

    async def aclose(self) -> None: ...
