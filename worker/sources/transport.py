"""The provider HTTP client's transport: httpx's API over aiohttp's connection handling.

httpcore's pool gets slower with every request in flight (encode/httpx#3215): on this 2-core
box a provider GET cost 2 ms of CPU one at a time and 7 ms with 100 polls running, aiohttp's
0.3-0.5 ms. `seqwatch run` polls many sources at once, so the shared client (worker/app/deps.py)
sends through aiohttp; sources keep speaking httpx (requests, responses, timeouts, errors), so
ProviderClient and its tests are unchanged. Response decoding (gzip) stays httpx's.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp

_CHUNK = 64 * 1024


def _as_httpx(exc: Exception) -> Exception | None:
    """aiohttp's failure as the httpx exception ProviderClient classifies (None: not one)."""
    import aiohttp
    from aiohttp.http_exceptions import ContentEncodingError

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc))
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(exc))
    if isinstance(exc, aiohttp.ClientPayloadError):
        if isinstance(exc.__cause__, ContentEncodingError):  # a body no retry will mend
            return httpx.DecodingError(str(exc))
        return httpx.ReadError(str(exc))  # truncated
    if isinstance(exc, aiohttp.ClientError | OSError):  # reset, disconnected
        return httpx.ReadError(str(exc))
    return None


class _AsHttpxErrors:
    """`with _as_httpx_errors:` raises aiohttp's failures as httpx's. A class, not a
    @contextmanager generator: it is entered twice per request, and aiohttp is looked up only
    when something failed."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, Exception):
            translated = _as_httpx(exc)
            if translated is not None:
                raise translated from exc


_as_httpx_errors = _AsHttpxErrors()


def _client_timeout(timeouts: dict[str, Any]) -> aiohttp.ClientTimeout:
    """httpx's timeouts (connect, read, pool) in aiohttp's terms: no total, as httpx has none."""
    return _aiohttp_timeout(timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool"))


@functools.lru_cache(maxsize=64)  # a few per process: the configured timeouts (immutable)
def _aiohttp_timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    import aiohttp

    return aiohttp.ClientTimeout(
        total=None,
        connect=None if pool is None or connect is None else pool + connect,
        sock_connect=connect,
        sock_read=read,
    )


def _no_user_agent(names: Iterable[str]) -> tuple[str, ...] | None:
    """What aiohttp must not add: its own User-Agent, when the request has none (aiohttp adds
    Accept and Accept-Encoding as httpx would). Asked per request: a session-wide skip list
    costs every request a sort and two header copies, and the shared client always sends one."""
    return None if any(name.lower() == "user-agent" for name in names) else ("User-Agent",)


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Chunks(self._response)

    async def aclose(self) -> None:
        self._response.release()  # the connection goes back to the pool once read


class _Chunks:
    """The body in chunks of up to `_CHUNK` bytes, as `iter_chunked` reads it; an iterator
    object rather than an async generator (one fewer generator to set up and finalize per
    request)."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        with _as_httpx_errors:
            chunk = await self._response.content.read(_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class Opened:
    """A response whose status and headers are in and whose body is still to be read (in
    chunks, decoded); `release` hands the connection back."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.raw_headers

    def chunks(self) -> _Chunks:
        return _Chunks(self._response)

    def release(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (opened on first use, inside the event loop) for every request."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        # Built now, not on the first request: loading the CA bundle takes tens of ms.
        self._verify = verify or httpx.create_ssl_context()  # httpx's CA bundle, as before
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            ssl=self._verify,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes Content-Encoding itself
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._open()
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from yarl import URL

        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {request.url.scheme!r}")
        with _as_httpx_errors:
            response = await self._opened().request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx already encoded it
                headers=request.headers.multi_items(),
                skip_auto_headers=_no_user_agent(request.headers.keys()),
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=_client_timeout(request.extensions.get("timeout", {})),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def open_get(
        self, url: str, *, headers: list[tuple[str, str]], timeouts: dict[str, Any]
    ) -> Opened:
        """GET `url` (already encoded) without building httpx's Request and Response: parsing and
        validating the URL, merging headers and params were most of a small request's CPU.
        Failures come out as the httpx exceptions `handle_async_request` raises; the body is
        decoded by aiohttp (gzip, deflate: what httpx's default Accept-Encoding offers)."""
        from yarl import URL

        if not url.startswith(("http://", "https://")):
            raise httpx.UnsupportedProtocol("unsupported URL scheme")
        with _as_httpx_errors:
            response = await self._opened().request(
                "GET",
                URL(url, encoded=True),
                headers=headers,
                skip_auto_headers=_no_user_agent(name for name, _ in headers),
                allow_redirects=False,
                auto_decompress=True,
                timeout=_client_timeout(timeouts),
            )
        return Opened(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ProviderHttp(httpx.AsyncClient):
    """The shared provider client: httpx's whole API, and `direct`, the aiohttp transport
    under it, for ProviderClient's plain GETs (worker/sources/http.py)."""

    def __init__(self, *, transport: AiohttpTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self.direct = transport
