"""The one way seqwatch opens Redis: str replies, and commands packed by hiredis's C packer.

redis-py's asyncio client packs every command argument in Python; a page commit carries
thousands of them, which made packing the largest single cost of an unchanged re-poll.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

# A silent Redis (accepts, never answers) must not hang a worker; this long without a byte
# from it is a timeout.
READ_TIMEOUT_S = 30.0


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
