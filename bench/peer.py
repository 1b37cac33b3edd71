"""The benchmark's peer process: a fast fake Reply.io API plus a webhook receiver.

Runs apart from the measured worker (`python -m bench.peer`, prints its port, serves until
killed) so the worker's CPU is measured apart from the fake's. A raw asyncio HTTP/1.1 server
with keep-alive; every contact page of the current cycle is rendered to bytes in advance.

Control (not counted as API requests):
  POST /_bench/account  {"enrollments", "seed", "per_sequence", "cycle"}: render that cycle
  POST /_bench/hook     {"secret": "whsec_..."}: verify deliveries with this secret
  GET  /_bench/stats    counters since the last control call, and this process's CPU time
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from bench.synth import ACCOUNT_KEY_PREFIX, PAGE_SIZE, Account, Cycle
from notifiers.signing import parse_secret, verify

_JSON = b"application/json"
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Peer:
    def __init__(self) -> None:
        self._account: Account | None = None
        self._rendered: tuple[Account, bool] | None = None  # (account, with changes)
        self._pages: dict[tuple[int, int], bytes] = {}
        self._hook_key: bytes | None = None
        self._counts: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        self._counts = {"api_requests": 0, "hook_posts": 0, "hook_verified": 0}

    def route(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes]:
        split = urlsplit(target)
        path = split.path
        if path.startswith("/v4/"):
            self._counts["api_requests"] += 1
            if method != "GET":
                return 405, b'{"title":"Method Not Allowed"}'
            return self._api(path, parse_qs(split.query), headers.get("x-api-key", ""))
        if path == "/hook" and method == "POST":
            self._counts["hook_posts"] += 1
            if self._hook_key is not None and verify(
                key=self._hook_key, headers=headers, body=body, now=int(time.time())
            ):
                self._counts["hook_verified"] += 1
            return 200, b'{"received":true}'
        if path == "/_bench/account" and method == "POST":
            return 200, orjson.dumps(self._prepare(orjson.loads(body)))
        if path == "/_bench/hook" and method == "POST":
            self._hook_key = parse_secret(orjson.loads(body)["secret"])
            self._reset()
            return 200, b"{}"
        if path == "/_bench/stats":
            return 200, orjson.dumps({**self._counts, "cpu_s": _cpu_seconds()})
        return 404, b'{"title":"Not Found"}'

    def _prepare(self, doc: dict[str, Any]) -> dict[str, Any]:
        account = Account(
            enrollments=int(doc["enrollments"]),
            seed=int(doc["seed"]),
            per_sequence=int(doc["per_sequence"]),
        )
        cycle = Cycle(doc["cycle"])
        started = time.perf_counter()
        wanted = (account, cycle is Cycle.CHANGED)
        if self._rendered != wanted:
            self._pages = {}  # drop the old cycle before rendering the new one
            self._pages = {(s, skip): b for s, skip, b in account.contact_pages(cycle)}
            self._rendered = wanted
        self._account = account
        self._reset()
        return {"pages": len(self._pages), "render_s": time.perf_counter() - started}

    def _api(self, path: str, query: dict[str, list[str]], key: str) -> tuple[int, bytes]:
        account = self._account
        if account is None:
            return 404, b'{"title":"No account"}'
        try:
            top = int(query.get("top", ["25"])[-1])
            skip = int(query.get("skip", ["0"])[-1])
        except ValueError:
            return 400, b'{"title":"Bad Request"}'
        if not (1 <= top <= PAGE_SIZE and skip >= 0):
            return 400, b'{"title":"Bad Request"}'
        parts = path.strip("/").split("/")
        if parts == ["v4", "sequences"]:
            own = key.removeprefix(ACCOUNT_KEY_PREFIX)
            if key.startswith(ACCOUNT_KEY_PREFIX) and own.isdigit():
                return 200, account.own_sequence_page(int(own))
            return 200, account.sequences_page(skip=skip, top=top)
        if len(parts) == 4 and parts[3] == "contacts" and parts[2].isdigit():
            seq_id = int(parts[2])
            cached = self._pages.get((seq_id, skip)) if top == PAGE_SIZE else None
            if cached is not None:
                return 200, cached
            k = seq_id - account.sequence_id(0)
            assert self._rendered is not None
            changes = account.changes(Cycle.CHANGED if self._rendered[1] else Cycle.BASELINE)
            return 200, account.contacts_page(k, skip=skip, top=top, changes=changes)
        return 404, b'{"title":"Not Found"}'

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                status, payload = self.route(method, target, headers, body)
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                    % (status, _REASONS.get(status, b"Error"), _JSON, len(payload))
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def _main() -> None:
    peer = Peer()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main())
