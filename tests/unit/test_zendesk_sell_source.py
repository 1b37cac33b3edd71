"""ZendeskSellSource against a respx-mocked Zendesk Sell API v2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.errors import MalformedResponse, SourceRejected, SourceUnavailable
from worker.sources.base import RawPage, Source
from worker.sources.limiter import PacingLimiter
from worker.sources.registry import PROVIDERS, SourceParams, build_source
from worker.sources.zendesk_sell import SEQUENCE_NAMES, ZendeskSellSource, error_text

BASE = "https://api.getbase.com"
TOKEN = "sell-token-DO-NOT-LEAK-42"
ENROLLMENTS = "/v2/sequence_enrollments"
LINK = f"{BASE}{ENROLLMENTS}"

Handler = Callable[[httpx.Request], httpx.Response]


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
    paced: bool = False,
) -> Source:
    params = SourceParams(
        name="sell-eu",
        api_key=TOKEN,
        base_url=None,
        sequences=sequences,
        http=http,
        limiter=None if paced else NoLimit(),
        sleep=sleep or Sleeps(),
    )
    return build_source("zendesk_sell", params)


def enrollment(n: int, *, sequence: int = 21124, name: str | None = "Q4") -> dict[str, Any]:
    summary: dict[str, Any] = {"id": sequence, "steps_total": 3}
    if name is not None:
        summary["name"] = name
    return {
        "data": {
            "id": n,
            "resource_type": "lead",
            "resource_id": 1000 + n,
            "state": "active",
            "previously_executed_step_position": 0,
            "sequence": {"data": summary, "meta": {"type": "sequence"}},
        },
        "meta": {"type": "sequence_enrollment"},
    }


def body(
    ids: range, *, next_page: int | None = None, links: bool = True, **kw: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"type": "collection", "count": len(ids)}
    if links:
        meta["links"] = {"self": f"{LINK}?page=1&per_page=100"}
        if next_page is not None:
            meta["links"]["next_page"] = f"{LINK}?page={next_page}&per_page=100"
    return {"items": [enrollment(n, **kw) for n in ids], "meta": meta}


def paged(pages: dict[int, dict[str, Any]]) -> Handler:
    """Answer by `page`; an unexpected page is a test failure."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        assert page in pages, f"unexpected page={page}"
        return httpx.Response(200, json=pages[page])

    return handler


async def collect(source: Source) -> list[RawPage]:
    return [page async for page in source.pages()]


def params_of(route: respx.Route) -> list[dict[str, str]]:
    return [dict(call.request.url.params) for call in route.calls]


async def test_follows_next_page_links_to_the_end(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(ENROLLMENTS).mock(
        side_effect=paged({1: body(range(100), next_page=2), 2: body(range(100, 103))})
    )
    source = make_source(http)
    assert source.incremental is False
    pages = await collect(source)
    assert [(p.where, len(p.records)) for p in pages] == [
        ("sequence enrollments page 1", 100),
        ("sequence enrollments page 2", 3),
    ]
    # Records are unwrapped from their {data, meta} envelope; the nested sequence is not.
    assert pages[1].records[0]["id"] == 100
    assert pages[1].records[0]["sequence"]["data"]["id"] == 21124
    assert params_of(route) == [
        {"page": "1", "per_page": "100", "sort_by": "id:asc"},
        {"page": "2", "per_page": "100", "sort_by": "id:asc"},
    ]
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert route.calls.last.request.headers["User-Agent"]  # Sell answers 400 without one


@pytest.mark.parametrize("links", [True, False])
async def test_without_next_page_a_full_page_asks_on_and_a_short_page_ends(
    router: respx.MockRouter, http: httpx.AsyncClient, links: bool
) -> None:
    route = router.get(ENROLLMENTS).mock(
        side_effect=paged(
            {1: body(range(100), links=links), 2: body(range(100, 200), links=links)}
            | {3: body(range(200, 250), links=links)}
        )
    )
    pages = await collect(make_source(http))
    assert [len(p.records) for p in pages] == [100, 100, 50]
    assert route.call_count == 3


async def test_an_empty_page_ends_an_exact_multiple(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(ENROLLMENTS).mock(
        side_effect=paged({1: body(range(100)), 2: body(range(0))})
    )
    pages = await collect(make_source(http))
    assert [len(p.records) for p in pages] == [100, 0]
    assert route.call_count == 2


async def test_explicit_null_next_page_ends_a_full_page(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    page = body(range(100))
    page["meta"]["links"]["next_page"] = None
    route = router.get(ENROLLMENTS).mock(side_effect=paged({1: page}))
    assert len(await collect(make_source(http))) == 1
    assert route.call_count == 1


async def test_a_short_page_ends_even_with_a_next_page_link(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    # The vendor's own client stops on a short page; so do we.
    route = router.get(ENROLLMENTS).mock(side_effect=paged({1: body(range(7), next_page=2)}))
    assert [len(p.records) for p in await collect(make_source(http))] == [7]
    assert route.call_count == 1


async def test_the_link_url_is_never_followed(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    page = body(range(100))
    page["meta"]["links"]["next_page"] = "https://evil.example/v2/sequence_enrollments?page=2"
    router.get(ENROLLMENTS).mock(side_effect=paged({1: page, 2: body(range(100, 101))}))
    evil = respx.get("https://evil.example/v2/sequence_enrollments")
    assert [len(p.records) for p in await collect(make_source(http))] == [100, 1]
    assert evil.call_count == 0


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (body(range(0), next_page=3), "'meta.links.next_page' is set but 'items' is empty"),
        (body(range(100, 200), next_page=2), "pagination loop: 'meta.links.next_page' points"),
        (body(range(100, 200), next_page=1), "points back to page 1"),
        (body(range(100, 200), next_page=5), "'meta.links.next_page' skips to page 5"),
        (body(range(100), links=False), "pagination loop: page repeats the previous page"),
    ],
)
async def test_pagination_anomalies_are_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, second: dict[str, Any], message: str
) -> None:
    first = body(range(100), next_page=2)
    router.get(ENROLLMENTS).mock(side_effect=paged({1: first, 2: second, 3: body(range(0))}))
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert "sequence enrollments page 2" in str(info.value)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "response is an array, expected an object"),
        ({"meta": {}}, "missing field 'items'"),
        ({"items": {}, "meta": {}}, "field 'items' is an object, expected an array"),
        ({"items": [{"meta": {}}], "meta": {}}, r"field 'items'\[0\].data is missing"),
        ({"items": [{"data": 5}], "meta": {}}, r"field 'items'\[0\].data is missing or not"),
        ({"items": []}, "field 'meta' is missing or not an object"),
        ({"items": [], "meta": {"links": []}}, "field 'meta.links' is not an object"),
        ({"items": [], "meta": {"links": {"next_page": 2}}}, "'meta.links.next_page' is not"),
    ],
)
async def test_bad_envelope_is_malformed_naming_the_field(
    router: respx.MockRouter, http: httpx.AsyncClient, doc: Any, message: str
) -> None:
    router.get(ENROLLMENTS).respond(200, json=doc)
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert str(info.value).startswith("source 'sell-eu': sequence enrollments page 1: ")


async def test_allow_list_keeps_only_named_sequences(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    page = body(range(3))
    page["items"] += body(range(3, 5), sequence=777)["items"]
    router.get(ENROLLMENTS).respond(200, json=page)
    pages = await collect(make_source(http, sequences=("777",)))
    assert [r["id"] for r in pages[0].records] == [3, 4]


async def test_allow_list_needs_each_records_sequence_id(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    page = body(range(2))
    del page["items"][1]["data"]["sequence"]
    router.get(ENROLLMENTS).respond(200, json=page)
    with pytest.raises(MalformedResponse, match=r"'items'\[1\].data.sequence.data.id"):
        await collect(make_source(http, sequences=("21124",)))
    # Without an allow-list the source passes it on: the normalizer names the field.
    router.get("/v2/sequences").respond(200, json={"items": [], "meta": {}})
    assert len((await collect(make_source(http)))[0].records) == 2


async def test_missing_sequence_names_are_looked_up_once_per_listing(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).mock(
        side_effect=paged(
            {1: body(range(100), name=None, next_page=2), 2: body(range(100, 101), name=None)}
        )
    )
    sequences = router.get("/v2/sequences").respond(
        200,
        json={
            "items": [{"data": {"id": 21124, "name": "Q4 outbound"}, "meta": {"type": "sequence"}}],
            "meta": {"type": "collection", "count": 1, "links": {}},
        },
    )
    pages = await collect(make_source(http, sequences=("21124",)))
    assert [p.extra[SEQUENCE_NAMES] for p in pages] == [{"21124": "Q4 outbound"}] * 2
    assert params_of(sequences) == [{"page": "1", "per_page": "100", "ids": "21124"}]


async def test_named_sequences_need_no_lookup(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).respond(200, json=body(range(2)))
    sequences = router.get("/v2/sequences").respond(500)
    pages = await collect(make_source(http))
    assert pages[0].extra == {}
    assert sequences.call_count == 0


async def test_a_failed_name_lookup_costs_only_the_names(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).respond(200, json=body(range(2), name=None))
    sequences = router.get("/v2/sequences").respond(403)
    pages = await collect(make_source(http))
    assert len(pages[0].records) == 2
    assert pages[0].extra == {}
    assert sequences.call_count == 1


async def test_429_without_retry_after_backs_off_exponentially(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    limited = httpx.Response(429, json={"errors": [{"error": {"code": "rate_limit_exceeded"}}]})
    router.get(ENROLLMENTS).mock(
        side_effect=[limited, limited, limited, httpx.Response(200, json=body(range(1)))]
    )
    sleeps = Sleeps()
    pages = await collect(make_source(http, sleep=sleeps))
    assert len(pages) == 1
    assert len(sleeps.calls) == 3
    # Jittered between half and all of 0.5 s, 1 s, 2 s.
    for wait, ceiling in zip(sleeps.calls, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling


async def test_429_with_retry_after_is_honoured(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "12"}, content=b""),
            httpx.Response(200, json=body(range(1))),
        ]
    )
    sleeps = Sleeps()
    await collect(make_source(http, sleep=sleeps))
    assert sleeps.calls == [12.0]


async def test_429_beyond_attempts_is_unavailable(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).respond(429, text="slow down")
    with pytest.raises(SourceUnavailable, match="rate limited by provider") as info:
        await collect(make_source(http))
    assert "gave up after 5 attempts" in str(info.value)


async def test_requests_are_paced_at_ten_per_second_by_default(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).mock(
        side_effect=paged({1: body(range(100)), 2: body(range(100, 200)), 3: body(range(0))})
    )
    sleeps = Sleeps()
    await collect(make_source(http, sleep=sleeps, paced=True))
    # The first request leaves at once; the next are booked 0.1 s apart (this sleep is fake,
    # so the second wait includes the first).
    first, second = sleeps.calls
    assert 0.05 < first <= 0.1
    assert 0.15 < second <= 0.2


async def test_error_envelope_becomes_one_clear_line(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(ENROLLMENTS).respond(
        400,
        json={
            "errors": [
                {
                    "error": {
                        "code": "invalid_param",
                        "message": "invalid request query parameter",
                        "details": "'per_page' must be between 1 and 100,\ngiven: 200",
                    },
                    "meta": {"type": "error"},
                }
            ],
            "meta": {"type": "errors", "http_status": "400 Bad Request"},
        },
    )
    with pytest.raises(SourceRejected) as info:
        await collect(make_source(http))
    assert str(info.value) == (
        "source 'sell-eu': sequence enrollments page 1: request rejected (HTTP 400); "
        "provider said: invalid_param: invalid request query parameter "
        "('per_page' must be between 1 and 100, given: 200)"
    )


async def test_401_fails_fast_and_never_shows_the_token(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(ENROLLMENTS).respond(
        401,
        json={"errors": [{"error": {"code": "unauthorized", "message": f"bad token {TOKEN}"}}]},
    )
    sleeps = Sleeps()
    with pytest.raises(SourceRejected, match="authentication failed") as info:
        await collect(make_source(http, sleep=sleeps))
    assert route.call_count == 1
    assert sleeps.calls == []
    assert TOKEN not in str(info.value)
    assert "unauthorized: bad token [redacted]" in str(info.value)


async def test_check_asks_for_one_enrollment(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get(ENROLLMENTS).respond(200, json=body(range(1)))
    await make_source(http).check()
    assert params_of(route) == [{"per_page": "1"}]
    router.get(ENROLLMENTS).respond(403)
    with pytest.raises(SourceRejected, match="credentials check: authentication failed"):
        await make_source(http).check()


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        (
            {"errors": [{"error": {"code": "not_found", "message": "Resource not found"}}]},
            "not_found: Resource not found",
        ),
        (
            {
                "errors": [
                    {"error": {"code": "invalid", "message": "bad", "field": "state"}},
                    {"error": {"code": "invalid", "message": "worse"}},
                ]
            },
            "invalid: bad [field state] (+1 more)",
        ),
        ({"errors": [{"error": {"details": "only details"}}]}, "only details"),
        ({"errors": [{"error": {"code": "c", "message": "m", "details": "m"}}]}, "c: m"),
        ({"message": "Too Many Requests"}, "Too Many Requests"),  # a non-standard 429 body
        ({"errors": []}, None),
        ("text", None),
    ],
)
def test_error_text(doc: Any, text: str | None) -> None:
    assert error_text(doc) == text


def test_error_text_redacts_the_bare_token() -> None:
    doc = {"errors": [{"error": {"code": "unauthorized", "message": f"token {TOKEN} expired"}}]}
    assert error_text(doc, secrets=(TOKEN,)) == "unauthorized: token [redacted] expired"


def test_registry_and_reprs_hide_the_token(http: httpx.AsyncClient) -> None:
    info = PROVIDERS["zendesk_sell"]
    assert info.default_base_url == BASE
    assert info.requests_per_second == 10
    assert info.incremental is False
    params = SourceParams(name="s", api_key=TOKEN, base_url=None, sequences=(), http=http)
    source = build_source("zendesk_sell", params)
    assert isinstance(source, ZendeskSellSource)
    assert TOKEN not in repr(params)
    assert TOKEN not in repr(source)


def test_page_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="page_size"):
        ZendeskSellSource(name="s", client=None, sequences=(), page_size=101)  # type: ignore[arg-type]


def test_default_limiter_is_a_pacer() -> None:
    # Documented 36,000/h per token; Sell sends no rate headers to pace by.
    assert repr(PacingLimiter(per_second=PROVIDERS["zendesk_sell"].requests_per_second)) == (
        "PacingLimiter(per_second=10)"
    )
