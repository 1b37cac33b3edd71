"""SourceMemory kept in Redis, in one small hash under the source's hash tag."""

from __future__ import annotations

from redis.asyncio import Redis

from worker.store import keys
from worker.store.redis_io import awaited


class RedisMemory:
    def __init__(self, redis: Redis, *, source: str) -> None:
        self._redis = redis
        self._key = keys.provider_memory(source)
        # The whole hash as the running poll's opening read it (under the source's lease, so
        # only this poll writes it until the poll ends); None: read Redis.
        self._primed: dict[str, str] | None = None

    @property
    def key(self) -> str:
        return self._key

    def prime(self, values: dict[str, str] | None) -> None:
        """Answer reads from `values` (the hash, read by the poll's opening) until primed with
        None at the poll's end; writes keep it current."""
        self._primed = values

    async def get(self, key: str) -> str | None:
        if self._primed is not None:
            return self._primed.get(key)
        value: str | None = await awaited(self._redis.hget(self._key, key))
        return value

    async def get_many(self, *keys: str) -> list[str | None]:
        """Several facts in one round trip (a poll reads what it needs at once)."""
        if self._primed is not None:
            return [self._primed.get(k) for k in keys]
        values: list[str | None] = await awaited(self._redis.hmget(self._key, list(keys)))
        return values

    async def set(self, key: str, value: str) -> None:
        await awaited(self._redis.hset(self._key, key, value))
        if self._primed is not None:
            self._primed[key] = value

    async def forget(self, key: str) -> None:
        await awaited(self._redis.hdel(self._key, key))
        if self._primed is not None:
            self._primed.pop(key, None)
