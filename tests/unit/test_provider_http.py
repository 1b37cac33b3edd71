"""ProviderClient (retries, Retry-After, error classes), PacingLimiter and pagination guards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.errors import MalformedResponse, SourceRejected, SourceUnavailable
from worker.sources.http import ProviderClient, _with_query
from worker.sources.limiter import PacingLimiter
from worker.sources.pagination import (
    PageGuard,
    optional_str,
    require_bool,
    require_id,
    require_list,
    require_object,
)

BASE = "https://api.provider.test"
KEY = "sk-live-5ecret-Key-0123456789"
WHERE = "sequence 7, skip=0"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class CountingLimiter:
    def __init__(self) -> None:
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_client(
    http: httpx.AsyncClient,
    *,
    sleep: Sleeps | None = None,
    limiter: CountingLimiter | None = None,
    base_url: str = BASE,
    **kwargs: Any,
) -> ProviderClient:
    return ProviderClient(
        source="reply-emea",
        http=http,
        base_url=base_url,
        headers={"X-API-Key": KEY},
        limiter=limiter or CountingLimiter(),
        sleep=sleep or Sleeps(),
        random=lambda: 1.0,
        **kwargs,
    )


def assert_clean(error: BaseException) -> None:
    text = str(error)
    assert KEY not in text
    assert "\n" not in text
    assert "api.provider.test" not in text  # never the URL


async def test_returns_json_sends_headers_and_params(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/prefix/v4/things").respond(200, json={"items": [1, 2]})
    client = make_client(http, base_url=f"{BASE}/prefix/")
    doc = await client.get_json(
        "/v4/things", params={"top": 1000, "status": ["A", "B"]}, where=WHERE
    )
    assert doc == {"items": [1, 2]}
    request = route.calls.last.request
    assert request.headers["X-API-Key"] == KEY
    assert request.headers["Accept"] == "application/json"
    assert request.url.params.multi_items() == [("top", "1000"), ("status", "A"), ("status", "B")]
    assert KEY not in repr(client)


async def test_429_retry_after_seconds_is_honoured(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    sleeps, limiter = Sleeps(), CountingLimiter()
    client = make_client(http, sleep=sleeps, limiter=limiter)
    assert await client.get_json("/x", where=WHERE) == {"ok": True}
    assert sleeps.calls == [7.0]
    assert route.call_count == 2
    assert limiter.acquired == 2  # every attempt is paced


async def test_429_retry_after_http_date(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.get("/x").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            httpx.Response(200, json=[]),
        ]
    )
    sleeps = Sleeps()
    now = 1445412480.0 - 12.5  # 12.5 s before the date above
    client = make_client(http, sleep=sleeps, now=lambda: now)
    assert await client.get_json("/x", where=WHERE) == []
    assert sleeps.calls == [12.5]


async def test_429_millisecond_header_when_configured(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    header = "X-RateLimit-Remaining-Interval-Milliseconds"
    router.get("/x").mock(
        side_effect=[
            httpx.Response(429, headers={header: "1500", "Retry-After": "60"}),
            httpx.Response(200, json={}),
        ]
    )
    sleeps = Sleeps()
    client = make_client(http, sleep=sleeps, retry_after_ms_header=header)
    await client.get_json("/x", where=WHERE)
    assert sleeps.calls == [1.5]


async def test_429_beyond_wait_budget_fails_at_once(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").respond(429, headers={"Retry-After": "600"})
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable) as info:
        await make_client(http, sleep=sleeps).get_json("/x", where=WHERE)
    assert "rate limited by provider (HTTP 429); retry after 600 s" in str(info.value)
    assert str(info.value).startswith("source 'reply-emea': sequence 7, skip=0: ")
    assert route.call_count == 1
    assert sleeps.calls == []
    assert_clean(info.value)


async def test_429_without_header_backs_off_until_attempts_run_out(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").respond(429)
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable, match=r"HTTP 429.*gave up after 3 attempts"):
        await make_client(http, sleep=sleeps, max_attempts=3).get_json("/x", where=WHERE)
    assert route.call_count == 3
    assert sleeps.calls == [0.5, 1.0]  # 0.5 s base, doubling; random() == 1.0 -> full step


async def test_5xx_is_retried_then_succeeds(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").mock(
        side_effect=[
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(500, json={"status": "error", "message": "oops"}),
            httpx.Response(200, json={"n": 1}),
        ]
    )
    sleeps = Sleeps()
    assert await make_client(http, sleep=sleeps).get_json("/x", where=WHERE) == {"n": 1}
    assert route.call_count == 3
    assert sleeps.calls == [0.5, 1.0]


async def test_jitter_uses_injected_random(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/x").mock(side_effect=[httpx.Response(503), httpx.Response(200, json={})])
    sleeps = Sleeps()
    client = ProviderClient(
        source="s",
        http=http,
        base_url=BASE,
        headers={},
        limiter=CountingLimiter(),
        sleep=sleeps,
        random=lambda: 0.0,
    )
    await client.get_json("/x", where=WHERE)
    assert sleeps.calls == [0.25]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("timed out to https://api.provider.test"), "ConnectTimeout"),
        (httpx.ConnectError("refused https://api.provider.test"), "ConnectError"),
    ],
)
async def test_transport_errors_retried_then_unavailable(
    router: respx.MockRouter, http: httpx.AsyncClient, exc: Exception, expected: str
) -> None:
    route = router.get("/x").mock(side_effect=exc)
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable, match=expected) as info:
        await make_client(http, sleep=sleeps, max_attempts=4).get_json("/x", where=WHERE)
    assert route.call_count == 4
    assert len(sleeps.calls) == 3
    assert_clean(info.value)


async def test_transport_error_then_success(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/x").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=1)])
    assert await make_client(http).get_json("/x", where=WHERE) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_rejected_without_retry(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int
) -> None:
    route = router.get("/x").respond(status)
    sleeps = Sleeps()
    with pytest.raises(SourceRejected) as info:
        await make_client(http, sleep=sleeps).get_json("/x", where=WHERE)
    assert f"authentication failed (HTTP {status}): check api_key" in str(info.value)
    assert route.call_count == 1
    assert sleeps.calls == []
    assert_clean(info.value)


async def test_404_is_rejected_without_retry(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").respond(404, json={"status": "not_found", "message": "nope"})
    with pytest.raises(SourceRejected, match=r"not found \(HTTP 404\): check base_url"):
        await make_client(http).get_json("/x", where=WHERE)
    assert route.call_count == 1


async def test_other_4xx_carries_problem_json_code_and_detail(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    problem = {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "Sequence is archived",
        "code": "sequenceAction.archived",
    }
    router.get("/x").respond(
        400, json=problem, headers={"Content-Type": "application/problem+json"}
    )
    with pytest.raises(SourceRejected) as info:
        await make_client(http).get_json("/x", where=WHERE)
    assert str(info.value).endswith(
        "request rejected (HTTP 400); provider said: sequenceAction.archived: Sequence is archived"
    )


async def test_unify_error_message_is_short_clean_and_redacted(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    message = f"key {KEY} is not\nvalid\x1b[31m " + "x" * 500
    router.get("/x").respond(422, json={"status": "bad_request", "message": message})
    with pytest.raises(SourceRejected) as info:
        await make_client(http).get_json("/x", where=WHERE)
    text = str(info.value)
    said = text.split("provider said: ", 1)[1]
    assert said.startswith("bad_request: key [redacted] is not valid [31m x")
    assert len(said) <= 200
    assert_clean(info.value)


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b'{"items": [{"id": 1', b""])
async def test_invalid_json_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, body: bytes
) -> None:
    route = router.get("/x").respond(200, content=body)
    with pytest.raises(MalformedResponse, match="response is not valid JSON") as info:
        await make_client(http).get_json("/x", where=WHERE)
    assert route.call_count == 1
    assert "maintenance" not in str(info.value)


class _CutStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"items": ['
        raise httpx.RemoteProtocolError("peer closed connection https://api.provider.test")


async def test_body_cut_mid_transfer_is_retried_then_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/x").mock(
        side_effect=lambda request: httpx.Response(200, stream=_CutStream())
    )
    with pytest.raises(MalformedResponse, match="response body truncated") as info:
        await make_client(http, max_attempts=2).get_json("/x", where=WHERE)
    assert route.call_count == 2
    assert_clean(info.value)


async def test_oversized_body_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/x").respond(200, json={"items": ["a" * 100]})
    with pytest.raises(MalformedResponse, match="larger than 50 bytes"):
        await make_client(http, max_body_bytes=50).get_json("/x", where=WHERE)


async def test_redirects_are_not_followed(router: respx.MockRouter) -> None:
    router.get("/x").respond(302, headers={"Location": f"{BASE}/elsewhere"})
    elsewhere = router.get("/elsewhere").respond(200, json={})
    # Even a shared client configured to follow redirects must not follow them here.
    async with httpx.AsyncClient(follow_redirects=True) as http:
        with pytest.raises(SourceRejected, match=r"unexpected redirect \(HTTP 302\)"):
            await make_client(http).get_json("/x", where=WHERE)
    assert elsewhere.call_count == 0


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://api.provider.test", "unsupported URL scheme"),
        ("https://[::1", "invalid URL"),
    ],
)
async def test_bad_base_url_is_rejected(
    http: httpx.AsyncClient, base_url: str, message: str
) -> None:
    # No mock router: both fail inside httpx before any connection is attempted.
    with pytest.raises(SourceRejected, match=message) as info:
        await make_client(http, base_url=base_url).get_json("/x", where=WHERE)
    assert_clean(info.value)


# -- PacingLimiter -------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_pacer_spaces_requests_evenly() -> None:
    t = FakeTime()
    limiter = PacingLimiter(per_second=4, clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        await limiter.acquire()
    assert t.sleeps == [0.25, 0.25, 0.25]


async def test_pacer_queues_concurrent_callers() -> None:
    t = FakeTime()
    recorder = Sleeps()  # the clock never moves: each caller must reserve the next slot
    limiter = PacingLimiter(per_second=2, clock=t.clock, sleep=recorder)
    await asyncio.gather(*(limiter.acquire() for _ in range(3)))
    assert sorted(recorder.calls) == [0.5, 1.0]


async def test_pacer_allows_burst_and_forgets_idle_time() -> None:
    t = FakeTime()
    limiter = PacingLimiter(per_second=1, burst=3, clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        await limiter.acquire()
    assert t.sleeps == [1.0]
    t.now += 60  # idle: no debt and no saved-up credit beyond the burst
    t.sleeps.clear()
    for _ in range(4):
        await limiter.acquire()
    assert t.sleeps == [1.0]


# -- pagination guards and envelope helpers ------------------------------------------------


def test_page_guard_detects_repeated_cursor() -> None:
    guard = PageGuard(10, source="u")
    guard.advance(None, where="page 1")
    guard.advance("abc", where="page 2")
    with pytest.raises(MalformedResponse, match="pagination loop: cursor repeated") as info:
        guard.advance("abc", where="page 3")
    assert "page 3" in str(info.value)
    assert "'u'" in str(info.value)


def test_page_guard_stops_runaway_listings() -> None:
    guard = PageGuard(3)
    for offset in (0, 10, 20):
        guard.advance(offset, where="x")
    assert guard.pages == 3
    with pytest.raises(MalformedResponse, match="more than 3 pages"):
        guard.advance(30, where="x")


Check = Callable[[], object]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: require_object([1], source="s", where="w"), "response is an array"),
        (lambda: require_list({}, "items", source="s", where="w"), "missing field 'items'"),
        (
            lambda: require_list({"items": {"a": 1}}, "items", source="s", where="w"),
            "field 'items' is an object, expected an array",
        ),
        (
            lambda: require_list({"items": [{}, 3]}, "items", source="s", where="w"),
            r"field 'items'\[1\] is a number, expected an object",
        ),
        (
            lambda: require_bool({"hasMore": "true"}, "hasMore", source="s", where="w"),
            "field 'hasMore' is a string, expected a boolean",
        ),
        (
            lambda: optional_str({}, "next_cursor", source="s", where="w"),
            "missing field 'next_cursor'",
        ),
        (
            lambda: optional_str({"next_cursor": 5}, "next_cursor", source="s", where="w"),
            "field 'next_cursor' is a number, expected a string or null",
        ),
        (
            lambda: require_id({"id": True}, "id", source="s", where="w"),
            "field 'id' is a boolean",
        ),
        (
            lambda: require_id({"id": "a\nb"}, "id", source="s", where="w"),
            "field 'id' is not a usable id",
        ),
    ],
)
def test_envelope_helpers_name_the_field(check: Check, message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        check()


def test_envelope_helpers_return_values() -> None:
    doc = {"items": [{"id": 1}], "hasMore": False, "next_cursor": None, "id": 42}
    assert require_list(doc, "items", source="s", where="w") == [{"id": 1}]
    assert require_bool(doc, "hasMore", source="s", where="w") is False
    assert optional_str(doc, "next_cursor", source="s", where="w") is None
    assert require_id(doc, "id", source="s", where="w") == "42"


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("https://api.reply.io/v3/sequences", {"top": 1000, "skip": 0}),
        ("http://127.0.0.1:8080/v4/sequences/17/contacts", {"sort_by": "addingDate"}),
        ("https://x.test/a", {"filter": "x&y=z é", "ids": ["1", "2"], "flag": True}),
        ("https://x.test/a b/%41", {"updated_after": "2026-01-01T00:00:00+00:00"}),
        ("https://x.test/plain", {"a-b": "x~y z", "c": 0, "d": False, "e": "2026-01-01T00:00:00Z"}),
        ("https://x.test/plain", None),
        ("https://x.test/plain", {}),
    ],
)
def test_the_direct_path_builds_the_url_httpx_would(
    url: str, params: dict[str, object] | None
) -> None:
    assert _with_query(url, params) == str(httpx.URL(url, params=params))  # type: ignore[arg-type]
