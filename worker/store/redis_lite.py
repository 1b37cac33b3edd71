"""A blocking Redis client for short read-only commands (`seqwatch status`): pipelined commands
over one socket, replies parsed by hiredis.

Importing redis-py costs more than `status` may take in all (SPEC: it starts in <= 0.25 s; the
package imports asyncio, importlib.metadata and a JWT library on the way). This client speaks
RESP2 for the URL forms seqwatch documents (redis://, rediss://, unix://, with a user, password
and database); anything else it leaves to redis-py (`supports`).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

Command = Sequence[str | int | float]
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0  # as worker.store.redis_conn: a silent Redis is a timeout, never a hang


class RedisUnavailable(Exception):
    """Redis could not be reached or refused us; `kind` reads like redis-py's exception name."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def supports(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return False
    return set(parse_qs(parts.query)) <= {"db"}


class LiteRedis:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._parts = parts
        query = parse_qs(parts.query)
        path_db = parts.path.strip("/") if parts.scheme != "unix" else ""
        self._db = int(query["db"][0] if "db" in query else path_db or 0)
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")

    def _connect(self) -> socket.socket:
        parts = self._parts
        try:
            if parts.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT_S)
                sock.connect(parts.path)
            else:
                address = (parts.hostname or "localhost", parts.port or 6379)
                sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if parts.scheme == "rediss":
                    import ssl

                    context = ssl.create_default_context()
                    sock = context.wrap_socket(sock, server_hostname=address[0])
        except TimeoutError as exc:
            raise RedisUnavailable("TimeoutError", str(exc)) from None
        except OSError as exc:
            raise RedisUnavailable("ConnectionError", str(exc)) from None
        sock.settimeout(READ_TIMEOUT_S)
        self._sock = sock
        hello: list[Command] = []
        if parts.password is not None:
            user = unquote(parts.username) if parts.username else None
            password = unquote(parts.password)
            hello.append(("AUTH", user, password) if user else ("AUTH", password))
        if self._db:
            hello.append(("SELECT", self._db))
        if hello:
            try:
                self.pipeline(hello)
            except RedisUnavailable as exc:
                kind = (
                    "AuthenticationError"
                    if exc.kind == "ResponseError" and hello[0][0] == ("AUTH")
                    else exc.kind
                )
                raise RedisUnavailable(kind, str(exc)) from None
        return sock

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip: every command sent, every reply read; an error reply raises."""
        if not commands:
            return []
        sock = self._sock or self._connect()
        # (hiredis's stub types the argument as a 1-tuple)
        packed = b"".join(hiredis.pack_command(tuple(c)) for c in commands)  # type: ignore[arg-type]
        replies: list[Any] = []
        try:
            sock.sendall(packed)
            while len(replies) < len(commands):
                reply = self._reader.gets()
                if reply is False:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RedisUnavailable("ConnectionError", "connection closed by server")
                    self._reader.feed(chunk)
                    continue
                replies.append(reply)
        except TimeoutError as exc:
            self.close()
            raise RedisUnavailable("TimeoutError", str(exc)) from None
        except OSError as exc:
            self.close()
            raise RedisUnavailable("ConnectionError", str(exc)) from None
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RedisUnavailable("ResponseError", str(reply))
        return replies

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
