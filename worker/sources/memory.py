"""SourceMemory kept in Redis, in one small hash under the source's hash tag."""

from __future__ import annotations

from redis.asyncio import Redis

from worker.store import keys
from worker.store.redis_io import awaited


class RedisMemory:
    def __init__(self, redis: Redis, *, source: str) -> None:
        self._redis = redis
        self._key = keys.provider_memory(source)

    async def get(self, key: str) -> str | None:
        value: str | None = await awaited(self._redis.hget(self._key, key))
        return value

    async def get_many(self, *keys: str) -> list[str | None]:
        """Several facts in one round trip (a poll reads what it needs at once)."""
        values: list[str | None] = await awaited(self._redis.hmget(self._key, list(keys)))
        return values

    async def set(self, key: str, value: str) -> None:
        await awaited(self._redis.hset(self._key, key, value))

    async def forget(self, key: str) -> None:
        await awaited(self._redis.hdel(self._key, key))
