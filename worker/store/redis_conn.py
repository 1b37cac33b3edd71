"""The one way seqwatch opens Redis: str replies, and commands packed by hiredis's C packer.

redis-py's asyncio client packs every command argument in Python; a page commit carries
thousands of them, which made packing the largest single cost of an unchanged re-poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import hiredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A silent Redis (accepts, never answers) must not hang a worker; this long without a byte
# from it is a timeout.
READ_TIMEOUT_S = 30.0
# asyncio's default high-water mark of a transport's write buffer.
WRITE_BUFFER_WAIT = 64 * 1024


class FastPackConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py does: "CONFIG GET" style names are split into separate arguments.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a type hiredis does not know: let redis-py encode it
            return super().pack_command(*args)

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        # redis-py arms `socket_timeout` with asyncio.wait_for around every write, which on
        # Python 3.11 runs the write as a Task of its own. A write waits only when the socket's
        # buffer is full (a slow or silent Redis): only then is the timeout armed.
        writer = self._writer
        if not self.is_connected or writer is None:
            return await super().send_packed_command(command, check_health)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer.writelines(command)
            if writer.transport.get_write_buffer_size() > WRITE_BUFFER_WAIT:
                await asyncio.wait_for(writer.drain(), self.socket_timeout)
            else:
                await writer.drain()  # returns at once: the buffer is below the high mark
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # a half-sent command: as redis-py does
            raise

    async def can_read_destructive(self) -> bool:
        # Checked on every checkout from the pool: redis-py tries a read under a zero timeout
        # (a timer and a cancellation each time). What it can find is what the stream already
        # holds, or its end: look at those directly.
        parser = self._parser
        stream = getattr(parser, "_stream", None)
        if not isinstance(parser, _AsyncHiredisParser) or not parser._connected or stream is None:
            return bool(await super().can_read_destructive())  # type: ignore[no-untyped-call]
        reader = parser._reader
        assert reader is not None
        if reader.gets() is not NOT_ENOUGH_DATA or len(stream._buffer):
            return True
        if stream.at_eof():
            raise RedisConnectionError("Connection closed by server.")
        return False

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's signature)
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        # redis-py arms `socket_timeout` around every reply, even one already received: for a
        # pipeline of 1,000 replies that is 1,000 timers. A reply already buffered needs no
        # deadline; only waiting on the socket does (once per read, i.e. per round trip).
        parser = self._parser
        if timeout is None and isinstance(parser, _AsyncHiredisParser) and parser._connected:
            reader = parser._reader
            assert reader is not None
            response = reader.gets(False) if disable_decoding else reader.gets()
            if response is not NOT_ENOUGH_DATA:
                if isinstance(response, ConnectionError):
                    raise response
                if isinstance(response, ResponseError):
                    raise response from None
                return response
        return await super().read_response(
            disable_decoding,
            timeout,
            disconnect_on_error=disconnect_on_error,
            push_request=push_request,
        )


def connect(url: str) -> Redis:
    """TLS (rediss://) and unix sockets keep redis-py's own connection classes."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": READ_TIMEOUT_S,
        "socket_connect_timeout": 10.0,
        "health_check_interval": 30,
    }
    if url.startswith("redis://"):
        options["connection_class"] = FastPackConnection
    client: Redis = Redis.from_url(url, **options)
    return client
