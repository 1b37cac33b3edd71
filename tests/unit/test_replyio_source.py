"""ReplyioSource against a respx-mocked Reply.io API (v4 paths unless a test says v3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.enrollment import SequenceRef
from worker.errors import ConfigError, MalformedResponse, SourceRejected, SourceUnavailable
from worker.sources.base import RawPage, Source
from worker.sources.registry import PROVIDERS, SourceParams, build_source
from worker.sources.replyio import ReplyioSource

BASE = "https://api.reply.io"
KEY = "reply-api-key-DO-NOT-LEAK-42"

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
    api_version: str = "v4",
) -> Source:
    params = SourceParams(
        name="reply-emea",
        api_key=KEY,
        base_url=None,
        sequences=sequences,
        http=http,
        limiter=NoLimit(),
        sleep=sleep or Sleeps(),
        api_version=api_version,
    )
    return build_source("replyio", params)


def contacts(sequence_id: int, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"contactId": n, "sequenceId": sequence_id, "status": "Active", "currentStep": 1}
        for n in range(start, start + count)
    ]


def paged(pages: dict[int, dict[str, Any]]) -> Handler:
    """Answer by `skip`; an unexpected offset is a test failure."""

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        assert skip in pages, f"unexpected skip={skip}"
        return httpx.Response(200, json=pages[skip])

    return handler


async def collect(source: Source) -> list[RawPage]:
    return [page async for page in source.pages()]


def params_of(route: respx.Route) -> list[dict[str, str]]:
    return [dict(call.request.url.params) for call in route.calls]


async def test_lists_every_sequence_to_the_end(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    sequences = router.get("/v4/sequences").respond(
        200,
        json={
            "items": [{"id": 100, "name": "Q4 outbound"}, {"id": 200, "name": None}],
            "hasMore": False,
        },
    )
    first = router.get("/v4/sequences/100/contacts").mock(
        side_effect=paged(
            {
                0: {"items": contacts(100, 0, 1000), "hasMore": True},
                1000: {"items": contacts(100, 1000, 3), "hasMore": False},
            }
        )
    )
    second = router.get("/v4/sequences/200/contacts").respond(
        200, json={"items": contacts(200, 0, 2), "hasMore": False}
    )
    source = make_source(http)
    assert source.incremental is False

    pages = await collect(source)

    assert [(p.where, len(p.records), p.sequence) for p in pages] == [
        ("sequence 100, contacts page 1 (skip=0)", 1000, SequenceRef(id="100", name="Q4 outbound")),
        ("sequence 100, contacts page 2 (skip=1000)", 3, SequenceRef(id="100", name="Q4 outbound")),
        ("sequence 200, contacts page 1 (skip=0)", 2, SequenceRef(id="200", name=None)),
    ]
    assert pages[1].records[0]["contactId"] == 1000
    assert params_of(sequences) == [{"top": "1000", "skip": "0"}]
    # Contacts come oldest first, so contacts added during the listing cannot shift offsets.
    order = {"sort_by": "addingDate", "sort_direction": "asc"}
    assert params_of(first) == [
        {**order, "top": "1000", "skip": "0"},
        {**order, "top": "1000", "skip": "1000"},
    ]
    assert second.call_count == 1
    # Both documented auth styles: v4's X-API-Key and v3's Bearer token.
    assert sequences.calls.last.request.headers["X-API-Key"] == KEY
    assert sequences.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


async def test_sequence_listing_pages_by_item_count(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    # The API may cap `top` below what we asked: advance by what actually came back.
    listing = router.get("/v4/sequences").mock(
        side_effect=paged(
            {
                0: {"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "hasMore": True},
                2: {"items": [{"id": 3, "name": "c"}], "hasMore": False},
            }
        )
    )
    for n in (1, 2, 3):
        router.get(f"/v4/sequences/{n}/contacts").respond(200, json={"items": [], "hasMore": False})
    pages = await collect(make_source(http))
    assert [p.where for p in pages] == [
        "sequence 1, contacts page 1 (skip=0)",
        "sequence 2, contacts page 1 (skip=0)",
        "sequence 3, contacts page 1 (skip=0)",
    ]
    assert [p.records for p in pages] == [[], [], []]
    assert listing.call_count == 2


async def test_allow_list_keeps_only_named_sequences(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").mock(
        side_effect=paged(
            {
                0: {"items": [{"id": 100, "name": "A"}, {"id": 200, "name": "B"}], "hasMore": True},
                2: {"items": [{"id": 300, "name": "C"}], "hasMore": False},
            }
        )
    )
    skipped = router.get("/v4/sequences/100/contacts").respond(
        200, json={"items": [], "hasMore": False}
    )
    wanted = router.get("/v4/sequences/200/contacts").respond(
        200, json={"items": contacts(200, 0, 1), "hasMore": False}
    )
    unlisted = router.get("/v4/sequences/999/contacts").respond(
        200, json={"items": contacts(999, 0, 1), "hasMore": False}
    )
    pages = await collect(make_source(http, sequences=("200", "999")))
    assert [p.sequence for p in pages] == [SequenceRef(id="200", name="B"), SequenceRef(id="999")]
    assert skipped.call_count == 0
    assert wanted.call_count == 1
    assert unlisted.call_count == 1  # explicit ids are listed even when the listing hides them


async def test_allow_list_stops_sequence_listing_once_all_found(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    listing = router.get("/v4/sequences").respond(
        200, json={"items": [{"id": 100, "name": "A"}], "hasMore": True}
    )
    router.get("/v4/sequences/100/contacts").respond(200, json={"items": [], "hasMore": False})
    pages = await collect(make_source(http, sequences=("100",)))
    assert len(pages) == 1
    assert listing.call_count == 1


async def test_info_has_more_variant_is_tolerated(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(
        200, json={"items": [{"id": 5, "name": "x"}], "info": {"hasMore": False}}
    )
    contacts_route = router.get("/v4/sequences/5/contacts").mock(
        side_effect=paged(
            {
                0: {"items": contacts(5, 0, 2), "info": {"hasMore": True}},
                2: {"items": contacts(5, 2, 1), "info": {"hasMore": False}},
            }
        )
    )
    pages = await collect(make_source(http))
    assert [len(p.records) for p in pages] == [2, 1]
    assert contacts_route.call_count == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"hasMore": False}, "missing field 'items'"),
        ({"items": None, "hasMore": False}, "field 'items' is null, expected an array"),
        ({"items": ["x"], "hasMore": False}, r"field 'items'\[0\] is a string"),
        ({"items": []}, "missing field 'hasMore'"),
        ({"items": [], "hasMore": "no"}, "field 'hasMore' is a string"),
        ({"items": [], "hasMore": True}, "'hasMore' is true but the page is empty"),
        ([], "response is an array, expected an object"),
    ],
)
async def test_bad_contact_envelope_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, body: Any, message: str
) -> None:
    router.get("/v4/sequences").respond(
        200, json={"items": [{"id": 7, "name": "s"}], "hasMore": False}
    )
    router.get("/v4/sequences/7/contacts").respond(200, json=body)
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert "sequence 7, contacts page 1 (skip=0)" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "no id"}, "missing field 'id'"),
        ({"id": None, "name": "x"}, "field 'id' is null"),
        ({"id": 3, "name": 5}, "field 'name' is a number"),
    ],
)
async def test_bad_sequence_item_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, item: dict[str, Any], message: str
) -> None:
    router.get("/v4/sequences").respond(200, json={"items": [item], "hasMore": False})
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert "sequences page 1 (skip=0), item 0" in str(info.value)


async def test_invalid_json_is_malformed(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.get("/v4/sequences").respond(200, content=b'{"items": [')
    with pytest.raises(MalformedResponse, match="response is not valid JSON"):
        await collect(make_source(http))


async def test_429_retry_after_then_success(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "30", "Content-Type": "application/problem+json"},
                json={"title": "Too Many Requests", "status": 429},
            ),
            httpx.Response(200, json={"items": [], "hasMore": False}),
        ]
    )
    sleeps = Sleeps()
    assert await collect(make_source(http, sleep=sleeps)) == []
    assert sleeps.calls == [30.0]


async def test_429_beyond_budget_is_unavailable(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(429, headers={"Retry-After": "1800"})
    with pytest.raises(SourceUnavailable, match="retry after 1800 s") as info:
        await collect(make_source(http))
    assert KEY not in str(info.value)


async def test_5xx_on_contacts_is_retried(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(
        200, json={"items": [{"id": 1, "name": "a"}], "hasMore": False}
    )
    route = router.get("/v4/sequences/1/contacts").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"items": [], "hasMore": False})]
    )
    sleeps = Sleeps()
    pages = await collect(make_source(http, sleep=sleeps))
    assert len(pages) == 1
    assert route.call_count == 2
    assert len(sleeps.calls) == 1


@pytest.mark.parametrize(("status", "text"), [(401, "check api_key"), (404, "check base_url")])
async def test_rejections_fail_fast(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int, text: str
) -> None:
    route = router.get("/v4/sequences").respond(status)
    sleeps = Sleeps()
    with pytest.raises(SourceRejected, match=text) as info:
        await collect(make_source(http, sleep=sleeps))
    assert route.call_count == 1
    assert sleeps.calls == []
    assert KEY not in str(info.value)


async def test_check_asks_for_one_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/v4/sequences").respond(200, json={"items": [], "hasMore": False})
    await make_source(http).check()
    assert params_of(route) == [{"top": "1"}]
    assert route.calls.last.request.headers["X-API-Key"] == KEY


async def test_check_reports_bad_credentials(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(401, content=b"")
    with pytest.raises(SourceRejected, match="credentials check: authentication failed") as info:
        await make_source(http).check()
    assert KEY not in str(info.value)


async def test_sequence_ids_are_escaped_in_paths(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(200, json={"items": [], "hasMore": False})
    route = router.get(url__regex=r"/v4/sequences/a%2F\.\.%2Fb/contacts").respond(
        200, json={"items": [], "hasMore": False}
    )
    await collect(make_source(http, sequences=("a/../b",)))
    assert route.call_count == 1


def test_registry_and_reprs_hide_the_key(http: httpx.AsyncClient) -> None:
    info = PROVIDERS["replyio"]
    assert info.default_base_url == BASE
    assert info.requests_per_second == pytest.approx(100 / 60)
    assert info.incremental is False
    params = SourceParams(name="r", api_key=KEY, base_url=None, sequences=(), http=http)
    source = build_source("replyio", params)
    assert isinstance(source, ReplyioSource)
    assert KEY not in repr(params)
    assert KEY not in repr(source)
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        build_source("nope", params)


def test_page_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="page_size"):
        ReplyioSource(name="r", client=None, sequences=(), page_size=1001)  # type: ignore[arg-type]


async def test_a_sequence_without_a_name_is_still_listed(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v4/sequences").respond(200, json={"items": [{"id": 3}], "hasMore": False})
    router.get("/v4/sequences/3/contacts").respond(200, json={"items": [], "hasMore": False})
    pages = await collect(make_source(http))
    assert [(p.sequence.id, p.sequence.name) for p in pages if p.sequence] == [("3", None)]
