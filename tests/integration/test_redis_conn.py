"""The product's Redis connection: buffered replies skip the per-reply timer, and still behave."""

from __future__ import annotations

import asyncio
import socket

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from worker.store.redis_conn import connect


async def test_a_pipeline_returns_every_reply_in_order_errors_included(store: Redis) -> None:
    async with store.pipeline(transaction=False) as pipe:
        for i in range(2000):
            pipe.set(f"k{i}", f"v{i}")
        pipe.lpush("k0", "x")  # wrong type: an error reply in the middle of the batch
        for i in range(2000):
            pipe.get(f"k{i}")
        replies = await pipe.execute(raise_on_error=False)
    assert replies[:2000] == [True] * 2000
    assert isinstance(replies[2000], ResponseError)
    assert replies[2001:] == [f"v{i}" for i in range(2000)]
    with pytest.raises(ResponseError):
        await store.lpush("k0", "x")  # type: ignore[misc]
    assert await store.get("k1") == "v1"


async def test_a_redis_that_answers_part_of_a_pipeline_then_goes_silent_times_out() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        writer.write(b"+PONG\r\n")  # one reply of the two asked for, then silence
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0")
    client.connection_pool.connection_kwargs["socket_timeout"] = 0.2  # the same path, faster
    client.connection_pool.connection_kwargs["health_check_interval"] = 0
    try:
        pipe = client.pipeline(transaction=False)
        pipe.ping()
        pipe.ping()
        with pytest.raises(RedisTimeout):
            await asyncio.wait_for(pipe.execute(), 3)
    finally:
        await client.aclose()
        server.close()


async def test_a_silent_redis_still_times_out_on_a_single_command() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        client.connection_pool.connection_kwargs["socket_timeout"] = 0.2
        with pytest.raises(RedisTimeout):
            await client.get("x")
        await client.aclose()
