"""A batch of Redis writes committed in one atomic, lease-guarded script call."""

from __future__ import annotations

from importlib.resources import files
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from worker.errors import LeaseLost, StoreError
from worker.store.lua import Script

_SCRIPT = Script(files("worker.store").joinpath("guarded_apply.lua").read_text())


def _text(value: bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Batch:
    """Collects HSET/HDEL/HINCRBY/ZADD/ZREM ops; `commit` applies all or none."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._ops: list[str | bytes] = []
        # What the `hget` ops read, in order, once committed ('' for a missing field).
        self.read_back: list[str] = []
        self._reads = 0

    def __len__(self) -> int:
        return len(self._ops)

    def _index(self, key: str) -> int:
        # KEYS[1] is the lease; op indexes start at 2.
        return self._keys.setdefault(key, len(self._keys) + 2)

    def hset(self, key: str, field: str, value: str | bytes | int) -> None:
        self._ops += [
            "H",
            str(self._index(key)),
            field,
            value if isinstance(value, str) else _text(value),
        ]

    def hdel(self, key: str, field: str) -> None:
        self._ops += ["D", str(self._index(key)), field]

    def hset_counted(
        self, key: str, field: str | bytes, value: str | bytes, *, counts: str, group: int
    ) -> None:
        """HSET that adds 1 to `group` in the hash `counts` when it creates the field."""
        self._ops += [
            "C",
            str(self._index(key)),
            field,
            value,
            str(self._index(counts)),
            str(group),
        ]

    def hdel_counted(self, key: str, field: str | bytes, *, counts: str, group: int) -> None:
        """HDEL that takes 1 from `group` in the hash `counts` when it removes the field."""
        self._ops += ["X", str(self._index(key)), field, str(self._index(counts)), str(group)]

    def hincr(self, key: str, field: str, delta: int) -> None:
        self._ops += ["I", str(self._index(key)), field, str(delta)]

    def zadd(self, key: str, member: str, score: float) -> None:
        self._ops += ["Z", str(self._index(key)), repr(float(score)), member]

    def zrem(self, key: str, member: str) -> None:
        self._ops += ["R", str(self._index(key)), member]

    def hget(self, key: str, field: str) -> int:
        """A read inside the atomic step; returns where its value will be in `read_back`."""
        self._ops += ["G", str(self._index(key)), field]
        self._reads += 1
        return self._reads - 1

    def delete(self, key: str) -> None:
        self._ops += ["K", str(self._index(key))]

    def release_lease(self) -> None:
        """The last op of a poll's last commit: the lease goes in the same atomic step (one
        round trip less); only a guarded commit can release it."""
        self._ops.append("U")

    async def commit_unguarded(self, redis: Redis, *, lease_key: str) -> None:
        """For writes that belong to no poll (health notices); still one atomic step."""
        await self.commit(redis, lease_key=lease_key, token="", ttl_ms=0)

    async def commit(self, redis: Redis, *, lease_key: str, token: str, ttl_ms: int) -> int:
        """Applies the batch; returns the result of its last HINCRBY (1 when it has none)."""
        keys = [lease_key, *self._keys]
        try:
            result = await _SCRIPT.run(
                redis, keys, [token, str(ttl_ms), *cast("list[str]", self._ops)]
            )
        except ResponseError as exc:
            if "LEASE_LOST" in str(exc):
                raise LeaseLost("lease on the source was lost; commit refused") from None
            raise StoreError(f"commit failed: {type(exc).__name__}") from None
        except RedisError as exc:
            raise StoreError(f"redis unavailable during commit ({type(exc).__name__})") from None
        if isinstance(result, list):  # the batch read something back
            self.read_back = [_text(v) for v in result[1:]]
            return int(result[0])
        return int(result)
