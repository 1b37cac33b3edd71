"""GET JSON from a provider API: pacing, retries, Retry-After, and error classification.

Every failure is decided here, once, into the SourceError tree. Messages name the source, the
page and what failed; they never contain the URL (httpx puts it in its messages), the API key,
or a response payload beyond the provider's own short error message.
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import orjson
import structlog

from worker.errors import MalformedResponse, SourceError, SourceRejected, SourceUnavailable
from worker.redaction import scrub
from worker.sources.limiter import Deferrable, PacingLimiter, RateLimiter, Windowed
from worker.sources.metering import count_request
from worker.sources.transport import AiohttpTransport, ProviderHttp

if TYPE_CHECKING:
    from worker.sources.params import SourceParams

Params = Mapping[str, str | int | Sequence[str]]

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0
_MESSAGE_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")
_log = structlog.get_logger(__name__)


class _Transient(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(
        self,
        reason: str,
        *,
        wait: float | None = None,
        final: type[SourceError] = SourceUnavailable,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait  # the provider's requested delay, if it named one
        self.final = final  # what to raise once attempts run out
        self.rate_limited = rate_limited  # a 429: the quota, not the server, said no


class ProviderClient:
    """A provider API client for one configured source (the auth headers live here)."""

    def __init__(
        self,
        *,
        source: str,
        http: httpx.AsyncClient,
        base_url: str,
        headers: Mapping[str, str],
        limiter: RateLimiter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_attempts: int = 5,
        max_retry_wait: float = 120.0,
        retry_after_header: str = "Retry-After",
        retry_after_ms_header: str | None = None,
        max_body_bytes: int = 64 * 1024 * 1024,
        random: Callable[[], float] = _random.random,
        now: Callable[[], float] = time.time,
        describe_error: Callable[[Any], str | None] | None = None,
        timeout: float | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.source = source
        self._http = http
        self._base_url = base_url.rstrip("/")
        # JSON unless the source asks otherwise (under any spelling of the name).
        accept = (
            {} if any(n.lower() == "accept" for n in headers) else {"Accept": "application/json"}
        )
        self._headers = {**accept, **headers}
        # Header values may be credentials: scrub them from anything a provider echoes back.
        self._secrets = tuple(v for v in headers.values() if len(v) >= 6)
        self._limiter = limiter
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._retry_after_header = retry_after_header
        self._retry_after_ms_header = retry_after_ms_header
        self._max_body_bytes = max_body_bytes
        self._random = random
        self._now = now
        self._describe_error = describe_error or generic_error_text
        # Sources share one HTTP client (one TLS context); each keeps its own timeout.
        self._timeout = (
            httpx.Timeout(timeout, connect=min(10.0, timeout)) if timeout is not None else None
        )
        self._merged: tuple[httpx.Headers, httpx.Headers] | None = None
        self._items: tuple[httpx.Headers, list[tuple[str, str]]] | None = None

    def __repr__(self) -> str:
        return f"ProviderClient(source={self.source!r})"

    async def get_json(
        self,
        path: str,
        *,
        params: Params | None = None,
        where: str,
        attempts: int | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """GET `base_url + path` and return the decoded JSON body, retrying what is transient.

        `attempts` lowers the retry budget for a request that must not hold up its caller
        (an optional lookup); by default the client's own `max_attempts` applies. `decode`
        replaces `orjson.loads` for a success body (worker/sources/typed.py); it raises
        orjson.JSONDecodeError for a body that is not JSON.
        """
        url = self._base_url + path
        budget = self._max_attempts if attempts is None else max(1, attempts)
        refused = 0  # 429s without a delay named, in this call
        for attempt in range(1, budget + 1):
            await self._limiter.acquire()
            count_request()
            try:
                return await self._attempt(url, params, where, decode)
            except _Transient as failure:
                requested = failure.wait
                if requested is None and failure.rate_limited:
                    refused += 1
                    requested = self._quota_wait(refused)
                if requested is not None and requested > self._max_retry_wait:
                    raise SourceUnavailable(
                        f"{failure.reason}; retry after {math.ceil(requested)} s",
                        source=self.source,
                        where=where,
                    ) from None
                if requested is not None and isinstance(self._limiter, Deferrable):
                    # Hold back every worker, not just us, even when this call gives up now.
                    await self._limiter.defer(requested)
                if attempt == budget:
                    raise failure.final(
                        f"{failure.reason}; gave up after {attempt} attempts",
                        source=self.source,
                        where=where,
                    ) from None
                wait = requested if requested is not None else self._backoff(attempt)
                _log.info(
                    "provider_retry",
                    source=self.source,
                    where=where,
                    reason=failure.reason,
                    attempt=attempt,
                    wait=round(wait, 3),
                )
                await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        url: str,
        params: Params | None,
        where: str,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        direct = self._direct()
        if direct is not None:
            return await self._attempt_direct(direct, url, params, where, decode)
        try:
            request = self._request(url, params)
        except httpx.InvalidURL:
            raise self._error(SourceRejected, "invalid URL: check base_url", where) from None
        with self._sending(where):
            response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            body = await self._read(response.aiter_bytes(), where)
        finally:
            await response.aclose()
        return self._classify(response, body, where, decode)

    @contextmanager
    def _sending(self, where: str) -> Iterator[None]:
        """How a request that got no response failed (either path)."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise _Transient(f"request timed out ({type(exc).__name__})") from None
        except httpx.UnsupportedProtocol:
            raise self._error(
                SourceRejected, "unsupported URL scheme: check base_url", where
            ) from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__})") from None

    def _direct(self) -> AiohttpTransport | None:
        """The aiohttp transport of the shared client, when a GET can skip httpx's request and
        response machinery: no base URL, params, cookies, auth or request hooks to merge."""
        http = self._http
        if not isinstance(http, ProviderHttp):
            return None
        if http.base_url.raw_path != b"/" or http.base_url.host or http.params or http.cookies:
            return None
        if http.auth is not None or http.event_hooks["request"]:
            return None
        return http.direct

    async def _attempt_direct(
        self,
        direct: AiohttpTransport,
        url: str,
        params: Params | None,
        where: str,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """`_attempt` through the aiohttp transport: the same failures, the same outcome."""
        timeout = (self._timeout or self._http.timeout).as_dict()
        with self._sending(where):
            opened = await direct.open_get(
                _with_query(url, params), headers=self._header_items(), timeouts=timeout
            )
        try:
            # What the hooks and `_classify` read: status and headers (the body is read here).
            response = httpx.Response(opened.status, headers=opened.headers, stream=_UNREAD)
            for hook in self._http.event_hooks["response"]:
                await hook(response)
            body = await self._read(opened.chunks(), where)
        finally:
            opened.release()
        return self._classify(response, body, where, decode)

    def _request(self, url: str, params: Params | None) -> httpx.Request:
        """The request `build_request` would build. It merges the client's base URL, params and
        cookies into every request, parsing the URL twice (about half the CPU of a small
        poll's request); the shared client has none of those, so only its headers and
        timeout are merged here."""
        http = self._http
        if http.base_url.raw_path != b"/" or http.base_url.host or http.params or http.cookies:
            return http.build_request(
                "GET",
                url,
                params=params,
                headers=self._headers,
                timeout=self._timeout or httpx.USE_CLIENT_DEFAULT,
            )
        timeout = self._timeout or http.timeout
        return httpx.Request(
            "GET",
            url,
            params=params,
            headers=self._merged_headers(http.headers),
            extensions={"timeout": timeout.as_dict()},
        )

    def _merged_headers(self, shared: httpx.Headers) -> httpx.Headers:
        """The shared client's headers with this source's on top, merged once (again only if
        the client's headers are replaced)."""
        if self._merged is None or self._merged[0] is not shared:
            headers = shared.copy()
            headers.update(self._headers)
            self._merged = (shared, headers)
        return self._merged[1]

    def _header_items(self) -> list[tuple[str, str]]:
        """What `_merged_headers` holds, as the (name, value) pairs the direct GET sends: the
        same pairs, merged without building httpx's Headers twice (which cost a source's
        first request about 30 µs: once per poll in a one-shot `seqwatch poll`)."""
        shared = self._http.headers
        if self._items is None or self._items[0] is not shared:
            own = {name.lower() for name in self._headers}
            items = [(name, value) for name, value in shared.multi_items() if name not in own]
            items += ((name.lower(), value) for name, value in self._headers.items())
            self._items = (shared, items)
        return self._items[1]

    async def _read(self, body: AsyncIterator[bytes], where: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in body:
                size += len(chunk)
                if size > self._max_body_bytes:
                    raise self._error(
                        MalformedResponse,
                        f"response larger than {self._max_body_bytes} bytes",
                        where,
                    )
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise _Transient(f"response timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            reason = f"response body truncated ({type(exc).__name__})"
            raise _Transient(reason, final=MalformedResponse) from None
        except httpx.DecodingError:
            raise self._error(
                MalformedResponse, "response body could not be decoded", where
            ) from None
        return b"".join(chunks)

    def _classify(
        self,
        response: httpx.Response,
        body: bytes,
        where: str,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return (decode or orjson.loads)(body)
            except orjson.JSONDecodeError:
                raise self._error(MalformedResponse, "response is not valid JSON", where) from None
        said = self._provider_message(body)
        suffix = f"; provider said: {said}" if said else ""
        if status == 429:
            raise _Transient(
                "rate limited by provider (HTTP 429)",
                wait=self._requested_wait(response),
                rate_limited=True,
            )
        if status >= 500 or status == 408:
            wait = self._requested_wait(response) if status == 503 else None
            raise _Transient(f"provider error (HTTP {status}){suffix}", wait=wait)
        if status in (401, 403):
            message = f"authentication failed (HTTP {status}): check api_key{suffix}"
        elif status == 404:
            message = "not found (HTTP 404): check base_url and sequence ids"
        elif 300 <= status < 400:
            message = f"unexpected redirect (HTTP {status}): check base_url"
        elif 400 <= status < 500:
            message = f"request rejected (HTTP {status}){suffix}"
        else:
            raise self._error(MalformedResponse, f"unexpected HTTP status {status}", where)
        raise SourceRejected(message, source=self.source, where=where, http_status=status)

    def _error(self, kind: type[SourceError], message: str, where: str) -> SourceError:
        return kind(message, source=self.source, where=where)

    def _quota_wait(self, refused: int) -> float | None:
        """After the `refused`-th 429 that named no delay: the next quota window the limiter
        knows (Sell: 1 s, then its hour). A second refusal after waiting out the short
        window means a longer window is spent; None when the limiter knows no windows."""
        if not isinstance(self._limiter, Windowed) or not self._limiter.windows:
            return None
        windows = self._limiter.windows
        return windows[min(refused, len(windows)) - 1]

    def _backoff(self, attempt: int) -> float:
        ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._random())

    def _requested_wait(self, response: httpx.Response) -> float | None:
        """Seconds the provider asked us to wait, from its millisecond or Retry-After header."""
        if self._retry_after_ms_header is not None:
            millis = _seconds(response.headers.get(self._retry_after_ms_header))
            if millis is not None:
                return millis / 1000.0
        raw = response.headers.get(self._retry_after_header)
        seconds = _seconds(raw)
        if seconds is not None or raw is None:
            return seconds
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - self._now())

    def _provider_message(self, body: bytes) -> str | None:
        """The provider's short error code/message (problem+json or {status, message})."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        said = self._describe_error(doc)
        if not said:
            return None
        cleaned = " ".join(_CONTROL.sub(" ", said).split())
        for secret in self._secrets:
            cleaned = cleaned.replace(secret, "[redacted]")
        cleaned = scrub(cleaned)  # before truncation: a cut secret would no longer match
        if len(cleaned) > _MESSAGE_LIMIT:
            cleaned = cleaned[: _MESSAGE_LIMIT - 1].rstrip() + "…"
        return cleaned or None


def generic_error_text(doc: Any) -> str | None:
    """`code: message` from RFC 9457 problem+json (Reply.io) or `{status, message}` (Unify)."""
    if not isinstance(doc, dict):
        return None
    code = next((doc[k] for k in ("code", "status") if isinstance(doc.get(k), str)), None)
    text = next(
        (doc[k] for k in ("detail", "message", "title", "error") if isinstance(doc.get(k), str)),
        None,
    )
    parts = [p for p in (code, text) if p]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts.pop()
    return ": ".join(parts) or None


class _Unread(httpx.AsyncByteStream):
    """The body of a response read elsewhere (an empty stream httpx does not load)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover (makes this an async generator)


_UNREAD = _Unread()
# A URL made only of these characters is one httpx would send unchanged (no escape to add).
_PLAIN_URL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:/\[\]@]*\Z")


def _with_query(url: str, params: Params | None) -> str:
    """`url` with `params`, encoded as httpx encodes them: urlencode of the items (a sequence
    value repeating its key); any other URL is left to httpx to escape."""
    if _PLAIN_URL.match(url) is None:
        return str(httpx.URL(url, params=params))
    if not params:
        return url
    parts: list[str] = []
    for key, value in params.items():
        if isinstance(value, str | int):
            parts.append(_query_item(key, value))
        else:
            parts += (_query_item(key, v) for v in value)
    return f"{url}?{'&'.join(parts)}"


# What urlencode (quote_plus) leaves as it is.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.\-~]*\Z")


def _query_item(key: str, value: str | int) -> str:
    # Booleans as httpx writes them.
    text = str(value).lower() if value is True or value is False else str(value)
    if _PLAIN_QUERY.match(key) is None or _PLAIN_QUERY.match(text) is None:
        return urlencode([(key, text)])
    return f"{key}={text}"


def _seconds(raw: str | None) -> float | None:
    """A non-negative finite number of (milli)seconds, or None when absent or not a number."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def client_for(
    params: SourceParams,
    *,
    default_base_url: str,
    requests_per_second: float,
    headers: Mapping[str, str],
    retry_after_ms_header: str | None = None,
    describe_error: Callable[[Any], str | None] | None = None,
) -> ProviderClient:
    """The ProviderClient a provider's `build` makes from its SourceParams."""
    return ProviderClient(
        source=params.name,
        http=params.http,
        base_url=params.base_url or default_base_url,
        headers=headers,
        limiter=params.limiter or PacingLimiter(per_second=requests_per_second, sleep=params.sleep),
        sleep=params.sleep,
        timeout=params.timeout,
        retry_after_ms_header=retry_after_ms_header,
        describe_error=describe_error,
    )
