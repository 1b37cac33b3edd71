"""Concurrent sends of one batch: one lane per enrollment, so each enrollment's events go one
after the other in queue (detection) order while lanes run side by side; acks in chunks."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

from notifiers.base import Notifier, OutboundEvent
from worker.errors import DeliveryError

# Delivered events are acked in chunks while a batch is in flight (and at its end), every
# ACK_EVERY events or ACK_INTERVAL_S seconds: a crash redelivers about one chunk, not a batch.
ACK_EVERY = 64
ACK_INTERVAL_S = 0.5
# Ordering key of events that name no enrollment (source health notices): one lane per source.
SOURCE_LANE = "~source"


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    event: OutboundEvent
    key: str  # ordering key: the enrollment


@dataclass(slots=True)
class Outcome:
    failed: list[tuple[list[Due], DeliveryError]] = field(default_factory=list)
    unsent: list[Due] = field(default_factory=list)
    crash: BaseException | None = None


def order_key(body: bytes) -> str:
    """The enrollment an event document is about; its deliveries keep detection order."""
    try:
        data = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return SOURCE_LANE
    enrollment = data.get("enrollment_id") if isinstance(data, dict) else None
    return enrollment if isinstance(enrollment, str) and enrollment else SOURCE_LANE


class Stop:
    """Set when the batch must stop launching sends: a failure, the lock was lost, or the
    process is shutting down (`stopping`)."""

    __slots__ = ("_reason", "_stopping")

    def __init__(self, stopping: Callable[[], bool]) -> None:
        self._reason: str | None = None
        self._stopping = stopping

    @property
    def reason(self) -> str | None:
        if self._reason is None and self._stopping():
            self._reason = "shutting down"
        return self._reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._reason = value

    def lose(self) -> None:
        """The lock was found gone: no new send may start."""
        self._reason = "lock lost"


class Acker:
    """Acks delivered events in chunks: every ACK_EVERY events or ACK_INTERVAL_S seconds, and
    at the end of the batch (`flush`)."""

    def __init__(self, ack: Callable[[list[Due]], Awaitable[None]]) -> None:
        self._ack = ack
        self._pending: list[Due] = []
        self._flushed_at = time.monotonic()

    async def delivered(self, group: Sequence[Due]) -> None:
        self._pending += group
        if len(self._pending) >= ACK_EVERY or time.monotonic() - self._flushed_at >= ACK_INTERVAL_S:
            await self.flush()

    async def flush(self) -> None:
        self._flushed_at = time.monotonic()
        taken, self._pending = self._pending, []
        if taken:
            await self._ack(taken)


async def send_lanes(
    notifier: Notifier,
    lanes: Sequence[list[list[Due]]],
    *,
    slots: asyncio.Semaphore,
    workers: int,
    stop: Stop,
    acker: Acker,
) -> Outcome:
    """Each lane's groups in order, lanes side by side; no new send once `stop` is set."""
    outcome = Outcome()
    queue = deque(lanes)

    async def work() -> None:
        while queue:
            lane = queue.popleft()
            for index, group in enumerate(lane):
                if stop.reason is not None:
                    outcome.unsent += [d for g in lane[index:] for d in g]
                    break
                try:
                    async with slots:
                        await notifier.send([d.event for d in group])
                    await acker.delivered(group)
                except DeliveryError as exc:
                    outcome.failed.append((group, exc))
                    outcome.unsent += [d for g in lane[index + 1 :] for d in g]
                    stop.reason = stop.reason or "failed"
                    break
                except Exception as exc:  # Redis (an ack, a pacer) or a bug: stop, re-raise
                    outcome.crash = outcome.crash or exc
                    outcome.unsent += [d for g in lane[index + 1 :] for d in g]
                    stop.reason = stop.reason or "crashed"
                    break

    await asyncio.gather(*(work() for _ in range(max(1, min(workers, len(lanes))))))
    return outcome


def lanes(batch: Sequence[Due], *, max_batch: int, first: set[str]) -> list[list[list[Due]]]:
    """Groups of sends per lane. Per-event notifiers: one lane per ordering key, a retried
    holder (`first`) ahead of the deliveries that waited for it. Digest notifiers: one lane."""
    if max_batch > 1:
        return [[list(batch[i : i + max_batch]) for i in range(0, len(batch), max_batch)]]
    by_key: dict[str, list[list[Due]]] = {}
    for due in batch:
        lane = by_key.setdefault(due.key, [])
        if due.event.id in first:
            lane.insert(0, [due])
        else:
            lane.append([due])
    return list(by_key.values())
