"""The provider client `seqwatch` builds (worker.app.deps.provider_client): httpx's API over
aiohttp, against a real local HTTP server: what ProviderClient relies on arrives intact."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiohttp import web

from worker.app.deps import provider_client
from worker.errors import MalformedResponse, SourceRejected, SourceUnavailable
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter

SEEN: list[web.Request] = []


async def _json(request: web.Request) -> web.Response:
    SEEN.append(request)
    doc = {"path": request.path, "query": request.query_string}
    resp = web.Response(body=orjson.dumps(doc), content_type="application/json")
    resp.set_cookie("session", "account-a")
    return resp


async def _gzip(request: web.Request) -> web.Response:
    body = gzip.compress(orjson.dumps({"items": list(range(1000))}))
    return web.Response(
        body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


async def _big(request: web.Request) -> web.Response:
    body = orjson.dumps({"items": [f"item-{n}" for n in range(50_000)]})  # many 64 KiB chunks
    return web.Response(body=body, content_type="application/json")


async def _bad_gzip(request: web.Request) -> web.Response:
    SEEN.append(request)
    return web.Response(
        body=b"\x1f\x8b\x08\x00not-gzip-at-all",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(
        status=code, body=orjson.dumps({"code": "nope", "message": "bad key"}),
        headers={"Retry-After": "0"},
    )  # fmt: skip


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(body=b"{}")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/json/{tail:.*}", _json)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/big", _big)
    app.router.add_get("/bad-gzip", _bad_gzip)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    SEEN.clear()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _client(http: httpx.AsyncClient, base_url: str, *, timeout: float = 30.0) -> ProviderClient:
    async def no_sleep(_: float) -> None:
        return None

    return ProviderClient(
        source="s", http=http, base_url=base_url, headers={"X-API-Key": "k-123456"},
        limiter=PacingLimiter(per_second=1e9), sleep=no_sleep, max_attempts=2, timeout=timeout,
    )  # fmt: skip


async def test_get_sends_path_query_and_headers_and_decodes_json(server: str) -> None:
    http = provider_client(10)
    try:
        doc = await _client(http, server).get_json(
            "/json/v4/sequences/a b/contacts",
            params={"top": 1000, "skip": 0, "filter": "x&y=z"},
            where="page 1",
        )
        assert doc["path"] == "/json/v4/sequences/a b/contacts"
        assert doc["query"] == "top=1000&skip=0&filter=x%26y%3Dz"
        headers = SEEN[0].headers
        assert headers["X-API-Key"] == "k-123456"
        assert headers["User-Agent"].startswith("seqwatch/")
        assert headers["Accept"] == "application/json"
        # A cookie one account's API set is not sent with the next request (of any source).
        await _client(http, server).get_json("/json/again", where="page 2")
        assert "Cookie" not in SEEN[1].headers
        assert len(http.cookies) == 0
    finally:
        await http.aclose()


async def test_a_source_header_replaces_the_shared_one_however_spelt(server: str) -> None:
    """The shared client's headers with the source's on top, as httpx merges them: a name the
    source sets (in any case) goes once, with its value; the shared client's other headers
    go too, as they are when the request is sent."""
    http = provider_client(10)
    try:
        client = ProviderClient(
            source="s", http=http, base_url=server, limiter=PacingLimiter(per_second=1e9),
            headers={"accept": "application/vnd.api+json", "X-API-Key": "k-123456"},
        )  # fmt: skip
        await client.get_json("/json/first", where="page 1")
        http.headers = {"User-Agent": "replaced/1.0", "Accept": "*/*", "X-Trace": "on"}
        await client.get_json("/json/second", where="page 2")
        await http.get(server + "/json/httpx", headers={"accept": "application/vnd.api+json"})
        first, second, through_httpx = (r.headers for r in SEEN)
        assert first.getall("Accept") == ["application/vnd.api+json"]
        assert first["X-API-Key"] == "k-123456"
        assert first["User-Agent"].startswith("seqwatch/")
        assert second.getall("Accept") == ["application/vnd.api+json"]
        assert (second["User-Agent"], second["X-Trace"]) == ("replaced/1.0", "on")
        sent = [(name.lower(), value) for name, value in second.items()]
        assert sorted(sent) == sorted(
            [(name.lower(), value) for name, value in through_httpx.items()]
            + [("x-api-key", "k-123456")]
        )
    finally:
        await http.aclose()


async def test_gzip_bodies_are_decoded(server: str) -> None:
    http = provider_client(10)
    try:
        doc = await _client(http, server).get_json("/gzip", where="page 1")
        assert doc == {"items": list(range(1000))}
    finally:
        await http.aclose()


async def test_a_body_of_many_chunks_arrives_whole(server: str) -> None:
    http = provider_client(10)
    try:
        doc = await _client(http, server).get_json("/big", where="page 1")
        assert doc == {"items": [f"item-{n}" for n in range(50_000)]}
    finally:
        await http.aclose()


async def test_a_client_without_a_user_agent_sends_none(server: str) -> None:
    """aiohttp adds no User-Agent of its own, on the direct GET or through httpx; with one set,
    it is the client's, sent once."""
    http = provider_client(10)
    try:
        del http.headers["User-Agent"]
        await _client(http, server).get_json("/json/direct", where="page 1")
        await http.get(server + "/json/httpx", params={"x": "1"})
        assert [r.path for r in SEEN] == ["/json/direct", "/json/httpx"]
        assert ["User-Agent" in r.headers for r in SEEN] == [False, False]
        assert [r.headers["Accept"] for r in SEEN] == ["application/json"] * 2
    finally:
        await http.aclose()
    http = provider_client(10)
    try:
        await http.get(server + "/json/agent")
        assert SEEN[-1].headers.getall("User-Agent")[0].startswith("seqwatch/")
        assert len(SEEN[-1].headers.getall("User-Agent")) == 1
    finally:
        await http.aclose()


async def test_a_body_that_cannot_be_decoded_is_malformed_at_once(server: str) -> None:
    """As with httpx: no retry can mend it (a truncated body is retried instead)."""
    http = provider_client(10)
    try:
        with pytest.raises(MalformedResponse, match="could not be decoded"):
            await _client(http, server).get_json("/bad-gzip", where="page 1")
        assert len(SEEN) == 1
    finally:
        await http.aclose()


async def test_statuses_are_classified_as_with_httpx(server: str) -> None:
    http = provider_client(10)
    try:
        with pytest.raises(SourceRejected) as rejected:
            await _client(http, server).get_json("/status/401", where="page 1")
        assert rejected.value.http_status == 401
        assert "nope: bad key" in str(rejected.value)
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await _client(http, server).get_json("/status/503", where="page 1")
    finally:
        await http.aclose()


async def test_timeouts_and_refused_connections_are_transient(server: str) -> None:
    http = provider_client(10)
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            await _client(http, server, timeout=0.3).get_json("/slow", where="page 1")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(SourceUnavailable, match="connection failed"):
            await _client(http, closed).get_json("/json/x", where="page 1")
    finally:
        await http.aclose()


async def test_many_requests_in_flight_share_the_pool(server: str) -> None:
    http = provider_client(10)
    try:
        client = _client(http, server)
        docs = await asyncio.gather(
            *(client.get_json(f"/json/{n}", where="page") for n in range(200))
        )
        assert [d["path"] for d in docs] == [f"/json/{n}" for n in range(200)]
    finally:
        await http.aclose()
