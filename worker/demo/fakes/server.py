"""A tiny real HTTP server on 127.0.0.1 that hands every request to an App.

Used by the fake provider APIs, the webhook receiver, the tests and `seqwatch demo`.
Stdlib only; one daemon thread per connection; silent (nothing on stderr).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive header mapping (keys are stored lowercased)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items = {k.lower(): v for k, v in (items or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Header values may hold API keys or signatures; keep them out of reprs.
        return f"Headers({sorted(self._items)!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """The last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False  # close the connection without answering (simulated RST)

    @classmethod
    def json(
        cls,
        payload: Any,
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        merged = {"Content-Type": content_type, **(headers or {})}
        return cls(status=status, headers=merged, body=body)

    @classmethod
    def text(cls, text: str, *, status: int = 200) -> Response:
        return cls(status=status, headers={"Content-Type": "text/plain"}, body=text.encode())

    @classmethod
    def drop(cls) -> Response:
        return cls(status=0, reset=True)


class App(Protocol):
    def handle(self, request: Request) -> Response: ...


class Mount:
    """Serve several apps on one server under path prefixes ("/replyio" -> app)."""

    def __init__(self, routes: Mapping[str, App]) -> None:
        self._routes = sorted(((p.rstrip("/"), a) for p, a in routes.items()), reverse=True)

    def handle(self, request: Request) -> Response:
        for prefix, app in self._routes:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                inner = request.path[len(prefix) :] or "/"
                return app.handle(
                    Request(
                        method=request.method,
                        path=inner,
                        query=request.query,
                        headers=request.headers,
                        body=request.body,
                    )
                )
        return Response.text("not found", status=404)


def retry_after_value(seconds: float) -> str:
    """A Retry-After value: whole seconds as HTTP says, fractions kept for fast tests."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def strip_prefix(path: str, prefix: str) -> str | None:
    """`path` below a mount `prefix` ("" = root), or None when it is not below it."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :] or "/"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle each answer waits ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo own the terminal."""

    def _dispatch(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(split.path) or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            headers=Headers(_join_headers(self.headers.items())),
            body=self._read_body(),
        )
        owner._record(request)
        try:
            response = owner.app.handle(request)
        except Exception as exc:  # the fake itself broke: answer 500, keep it for the test
            owner._record_error(exc)
            response = Response.text("fake app error", status=500)
        if response.reset:
            self._reset()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST instead of FIN: a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


def _join_headers(items: list[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients that hang up (timeouts, resets) are expected here."""

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request, add=True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, add=False)
        super().shutdown_request(request)


class FakeServer:
    """Runs `app` on 127.0.0.1 at a free port in a daemon thread.

    `requests` is every request received, in order (a snapshot copy).
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._errors: list[BaseException] = []
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:  # wake keep-alive handler threads so they exit
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by the app (each answered with a 500)."""
        with self._lock:
            return list(self._errors)

    def count(self, path: str | None = None, *, contains: str | None = None) -> int:
        """Requests whose path equals `path` and/or contains `contains` (all when both None)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (path is None or r.path == path) and (contains is None or contains in r.path)
            )

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)
