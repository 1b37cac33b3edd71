"""The one way seqwatch opens Redis: str replies, and commands packed by hiredis's C packer.

redis-py's asyncio client packs every command argument in Python; a page commit carries
thousands of them, which made packing the largest single cost of an unchanged re-poll.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection


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


def connect(url: str) -> Redis:
    """TLS (rediss://) and unix sockets keep redis-py's own connection classes."""
    options: dict[str, Any] = {
        "decode_responses": True,
        # A Redis that stops answering without closing the connection must not hang a worker.
        "socket_timeout": 30.0,
        "socket_connect_timeout": 10.0,
        "health_check_interval": 30,
    }
    if url.startswith("redis://"):
        options["connection_class"] = FastPackConnection
    client: Redis = Redis.from_url(url, **options)
    return client
