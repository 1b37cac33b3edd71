"""UnifySource against a respx-mocked Unify Sequences API v1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.errors import MalformedResponse, SourceRejected
from worker.sources.base import RawPage, Source
from worker.sources.http import ProviderClient
from worker.sources.registry import PROVIDERS, SourceParams, build_source
from worker.sources.unify import UnifySource

BASE = "https://api.unifygtm.com"
PATH = "/sequences/v1/enrollments"
KEY = "unify-key-never-print-me-7"
SEQ_A = "9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a"
SEQ_B = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class NoLimit:
    async def acquire(self) -> None:
        return None


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def make_source(
    http: httpx.AsyncClient,
    *,
    sequences: tuple[str, ...] = (),
    sleep: Sleeps | None = None,
    base_url: str | None = None,
) -> Source:
    params = SourceParams(
        name="unify-main",
        api_key=KEY,
        base_url=base_url,
        sequences=sequences,
        http=http,
        limiter=NoLimit(),
        sleep=sleep or Sleeps(),
    )
    return build_source("unify", params)


def enrollments(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{n}", "updated_at": "2023-11-07T05:31:56Z"} for n in range(count)]


def by_cursor(pages: dict[str | None, dict[str, Any]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        assert cursor in pages, f"unexpected cursor {cursor!r}"
        return httpx.Response(200, json=pages[cursor])

    return handler


async def collect(source: Source, updated_after: str | None = None) -> list[RawPage]:
    return [page async for page in source.pages(updated_after=updated_after)]


def params_of(route: respx.Route) -> list[dict[str, str]]:
    return [dict(call.request.url.params) for call in route.calls]


async def test_follows_cursors_to_the_end(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(PATH).mock(
        side_effect=by_cursor(
            {
                None: {"enrollments": enrollments("a", 100), "next_cursor": "c1"},
                "c1": {"enrollments": enrollments("b", 100), "next_cursor": "c2"},
                "c2": {"enrollments": enrollments("c", 7), "next_cursor": None},
            }
        )
    )
    source = make_source(http)
    assert source.incremental is True

    pages = await collect(source)

    assert [(p.where, len(p.records), p.sequence) for p in pages] == [
        ("enrollments page 1", 100, None),
        ("enrollments page 2", 100, None),
        ("enrollments page 3", 7, None),
    ]
    assert pages[2].records[0]["id"] == "c-0"
    assert params_of(route) == [
        {"limit": "100"},
        {"limit": "100", "cursor": "c1"},
        {"limit": "100", "cursor": "c2"},
    ]
    assert route.calls.last.request.headers["x-api-key"] == KEY


async def test_updated_after_is_passed_on_every_page(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(PATH).mock(
        side_effect=by_cursor(
            {
                None: {"enrollments": enrollments("a", 1), "next_cursor": "n"},
                "n": {"enrollments": [], "next_cursor": None},
            }
        )
    )
    pages = await collect(make_source(http), updated_after="2023-11-07T00:00:00Z")
    assert len(pages) == 2
    assert [p["updated_after"] for p in params_of(route)] == ["2023-11-07T00:00:00Z"] * 2


async def test_allow_list_lists_each_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        sequence = request.url.params["sequence_id"]
        cursor = request.url.params.get("cursor")
        if sequence == SEQ_A and cursor is None:
            return httpx.Response(
                200, json={"enrollments": enrollments("a", 2), "next_cursor": "x"}
            )
        if sequence == SEQ_A and cursor == "x":
            return httpx.Response(
                200, json={"enrollments": enrollments("a2", 1), "next_cursor": None}
            )
        assert (sequence, cursor) == (SEQ_B, None)
        # The same cursor string in another listing is not a loop.
        return httpx.Response(200, json={"enrollments": enrollments("b", 1), "next_cursor": None})

    route = router.get(PATH).mock(side_effect=handler)
    pages = await collect(make_source(http, sequences=(SEQ_A, SEQ_B)), updated_after="T")
    assert [p.where for p in pages] == [
        f"sequence {SEQ_A}, enrollments page 1",
        f"sequence {SEQ_A}, enrollments page 2",
        f"sequence {SEQ_B}, enrollments page 1",
    ]
    assert params_of(route)[1] == {
        "limit": "100",
        "sequence_id": SEQ_A,
        "updated_after": "T",
        "cursor": "x",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"enrollments": []}, "missing field 'next_cursor'"),
        ({"next_cursor": None}, "missing field 'enrollments'"),
        ({"enrollments": [], "next_cursor": 12}, "field 'next_cursor' is a number"),
        ({"enrollments": [], "next_cursor": ""}, "field 'next_cursor' is an empty string"),
        ({"enrollments": {"id": 1}, "next_cursor": None}, "field 'enrollments' is an object"),
        ({"enrollments": [1], "next_cursor": None}, r"field 'enrollments'\[0\] is a number"),
    ],
)
async def test_bad_envelope_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    router.get(PATH).respond(200, json=body)
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert str(info.value).startswith("source 'unify-main': enrollments page 1: ")


@pytest.mark.parametrize(
    "pages",
    [
        {
            None: {"enrollments": [], "next_cursor": "same"},
            "same": {"enrollments": [], "next_cursor": "same"},
        },
        {
            None: {"enrollments": [], "next_cursor": "a"},
            "a": {"enrollments": [], "next_cursor": "b"},
            "b": {"enrollments": [], "next_cursor": "a"},
        },
    ],
)
async def test_repeated_cursor_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, pages: dict[str | None, dict[str, Any]]
) -> None:
    route = router.get(PATH).mock(side_effect=by_cursor(pages))
    with pytest.raises(MalformedResponse, match="pagination loop: cursor repeated"):
        await collect(make_source(http))
    assert route.call_count == len(pages)  # the repeated cursor is never requested again


async def test_runaway_listing_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    counter = iter(range(1_000))

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"enrollments": [], "next_cursor": f"c{next(counter)}"})

    router.get(PATH).mock(side_effect=endless)
    client = ProviderClient(
        source="u", http=http, base_url=BASE, headers={}, limiter=NoLimit(), sleep=Sleeps()
    )
    source = UnifySource(name="u", client=client, sequences=(), max_pages=5)
    with pytest.raises(MalformedResponse, match="more than 5 pages") as info:
        await collect(source)
    assert "enrollments page 6" in str(info.value)


async def test_invalid_json_is_malformed(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.get(PATH).respond(200, content=b'{"enrollments": [{"id": "x"}], "next_cur')
    with pytest.raises(MalformedResponse, match="response is not valid JSON"):
        await collect(make_source(http))


async def test_5xx_retried_then_success(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    route = router.get(PATH).mock(
        side_effect=[
            httpx.Response(500, json={"status": "error", "message": "boom"}),
            httpx.Response(200, json={"enrollments": enrollments("a", 1), "next_cursor": None}),
        ]
    )
    sleeps = Sleeps()
    pages = await collect(make_source(http, sleep=sleeps))
    assert [len(p.records) for p in pages] == [1]
    assert route.call_count == 2
    assert len(sleeps.calls) == 1


async def test_429_retry_after_then_success(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(PATH).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "3"},
                json={"status": "rate_limited", "message": "slow down"},
            ),
            httpx.Response(200, json={"enrollments": [], "next_cursor": None}),
        ]
    )
    sleeps = Sleeps()
    assert len(await collect(make_source(http, sleep=sleeps))) == 1
    assert sleeps.calls == [3.0]


@pytest.mark.parametrize(("status", "text"), [(401, "check api_key"), (404, "check base_url")])
async def test_rejections_fail_fast(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int, text: str
) -> None:
    route = router.get(PATH).respond(status, json={"status": "unauthorized", "message": KEY})
    with pytest.raises(SourceRejected, match=text) as info:
        await collect(make_source(http))
    assert route.call_count == 1
    assert KEY not in str(info.value)


async def test_check_asks_for_one_enrollment(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(PATH).respond(200, json={"enrollments": [], "next_cursor": None})
    await make_source(http).check()
    assert params_of(route) == [{"limit": "1"}]
    assert route.calls.last.request.headers["x-api-key"] == KEY


async def test_base_url_prefix_is_kept(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    route = router.get(f"/proxy{PATH}").respond(200, json={"enrollments": [], "next_cursor": None})
    await collect(make_source(http, base_url=f"{BASE}/proxy"))
    assert route.call_count == 1


def test_registry_entry(http: httpx.AsyncClient) -> None:
    info = PROVIDERS["unify"]
    assert info.default_base_url == BASE
    assert info.requests_per_second == pytest.approx(100_000 / 300)
    assert info.incremental is True
    source = make_source(http)
    assert isinstance(source, UnifySource)
    assert KEY not in repr(source)
