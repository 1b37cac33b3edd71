"""Redis reads written once, run by either client: a read is a plan, a generator that yields a
batch of commands, receives their replies and finally returns its result.

`gather` runs plans side by side, so their batches share round trips; `run_sync` drives a plan
over worker.store.redis_lite (`seqwatch status`: no asyncio, no redis-py), `run_async` over
redis-py. Replies are RESP2 as the server sends them; redis-py's parsed forms are accepted too
(`as_hash`, `scan_reply`), so a plan reads the same through both.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from worker.store.redis_lite import LiteRedis

T = TypeVar("T")
Command = tuple[str | int | float, ...]
Plan = Generator[list[Command], list[Any], T]


def gather(plans: Sequence[Plan[Any]]) -> Plan[list[Any]]:
    """Every plan's next batch in one round trip, until all are done; results in order."""
    results: list[Any] = [None] * len(plans)
    pending: dict[int, list[Command]] = {}
    for i, plan in enumerate(plans):
        try:
            pending[i] = next(plan)
        except StopIteration as done:
            results[i] = done.value
    while pending:
        replies = yield [command for batch in pending.values() for command in batch]
        at, following = 0, {}
        for i, batch in pending.items():
            mine, at = replies[at : at + len(batch)], at + len(batch)
            try:
                following[i] = plans[i].send(mine)
            except StopIteration as done:
                results[i] = done.value
        pending = following
    return results


def run_sync(plan: Plan[T], client: LiteRedis) -> T:
    try:
        batch = next(plan)
        while True:
            batch = plan.send(client.pipeline(batch))
    except StopIteration as done:
        result: T = done.value
        return result


async def run_async(plan: Plan[T], redis: Redis) -> T:
    try:
        batch = next(plan)
        while True:
            async with redis.pipeline(transaction=False) as pipe:
                for command in batch:
                    pipe.execute_command(*command)
                replies = await pipe.execute()
            batch = plan.send(replies)
    except StopIteration as done:
        result: T = done.value
        return result


def as_hash(reply: Any) -> dict[str, str]:
    """HGETALL: a flat [field, value, ...] list from the wire, a dict from redis-py."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def scan_reply(reply: Any) -> tuple[int, list[str]]:
    """SCAN: [cursor, keys] from the wire, (int cursor, keys) from redis-py."""
    cursor, found = reply
    return int(cursor), list(found)
