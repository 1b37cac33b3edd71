"""Source notices other than health (`source.state_lost`, `source.removals_held`).

Opt-in like `source.failing`: only destinations that name `source.*` types receive them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from worker.delivery.outbox import Route, enqueue, publish
from worker.events import HealthType, notice_document
from worker.store.batch import Batch


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceNotice:
    id: str
    type: HealthType
    source: str
    provider: str
    detected_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return notice_document(
            notice_type=self.type,
            notice_id=self.id,
            source=self.source,
            provider=self.provider,
            details=dict(self.details),
            detected_at=self.detected_at,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.document())


async def send(redis: Redis, notice: SourceNotice, *, routes: Sequence[Route]) -> int:
    """Publishes outside any poll (one atomic step); returns the deliveries queued."""
    return await publish(
        redis, notice, routes=routes, now_ms=int(notice.detected_at.timestamp() * 1000)
    )


def add(batch: Batch, notice: SourceNotice, *, routes: Sequence[Route]) -> int:
    """Adds the notice to a poll's commit; returns the deliveries queued."""
    return enqueue(batch, notice, routes=routes, now_ms=int(notice.detected_at.timestamp() * 1000))
