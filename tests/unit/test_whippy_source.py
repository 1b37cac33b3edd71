"""WhippySource against a respx-mocked Whippy API: paging to `total`, folding, envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.enrollment import SequenceRef
from worker.errors import ConfigError, MalformedResponse, SourceRejected, SourceUnavailable
from worker.normalize.fields import UnreadableId
from worker.normalize.whippy import normalize as whippy_normalize
from worker.sources import whippy
from worker.sources.base import RawPage, Source
from worker.sources.http import ProviderClient
from worker.sources.registry import PROVIDERS, SourceParams, build_source
from worker.sources.whippy import WhippySource, error_text

BASE = "https://api.whippy.co"
KEY = "whippy-api-key-DO-NOT-LEAK-42"
SEQ = "e4a747a3-a290-48da-b671-d3cd591f920b"
STEP_IDS = ["s0", "s1", "s2"]

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
    http: httpx.AsyncClient, *, sequences: tuple[str, ...] = (), sleep: Sleeps | None = None
) -> Source:
    params = SourceParams(
        name="whippy-us",
        api_key=KEY,
        base_url=None,
        sequences=sequences,
        http=http,
        limiter=NoLimit(),
        sleep=sleep or Sleeps(),
    )
    return build_source("whippy", params)


def row(n: int, contact: int, step: int, status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"row-{n}",
        "status": status,
        "contact": {"id": f"c{contact}", "name": f"Contact {contact}", "email": None},
        "step_id": STEP_IDS[step],
        "sequence_id": SEQ,
        "unsubscribed": False,
        "clicked_link": False,
        "created_at": "2023-11-02T14:03:44Z",
        "updated_at": "2023-11-02T14:03:44Z",
        "contact_messages": [{"id": "m", "body": "Hi there", "attachments": []}],
        **extra,
    }


def detail(title: str | None = "Q4 outreach", steps: int = 3) -> dict[str, Any]:
    return {
        "data": {
            "id": SEQ,
            "title": title,
            "steps": [{"id": STEP_IDS[n], "position": n, "title": f"S{n}"} for n in range(steps)],
        }
    }


def by_offset(pages: dict[int, dict[str, Any]], limit: str = "500") -> Handler:
    """Answer by `offset`; an unexpected offset or limit is a test failure."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == limit
        offset = int(request.url.params["offset"])
        assert offset in pages, f"unexpected offset={offset}"
        return httpx.Response(200, json=pages[offset])

    return handler


def one_sequence(router: respx.MockRouter, title: str | None = "Q4 outreach") -> None:
    router.get("/v1/sequences").respond(
        200, json={"data": [{"id": SEQ, "title": title}], "total": 1}
    )
    router.get(f"/v1/sequences/{SEQ}").respond(200, json=detail(title))


def responded_route(router: respx.MockRouter, seq: str = SEQ) -> respx.Route:
    """The documented `responded=true` filter of the contacts listing."""
    return router.get(
        f"/v1/sequences/{seq}/contacts", params__contains={"responded": "true"}, name="responded"
    )


def contacts_route(router: respx.MockRouter) -> respx.Route:
    if not any(r.name == "responded" for r in router.routes):
        responded_route(router).respond(200, json={"data": [], "total": 0})
    return router.get(f"/v1/sequences/{SEQ}/contacts")


async def collect(source: Source) -> list[RawPage]:
    return [page async for page in source.pages()]


def offsets(route: respx.Route) -> list[int]:
    return [int(call.request.url.params["offset"]) for call in route.calls]


async def test_folds_rows_across_pages_into_one_page_per_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    one_sequence(router)
    rows = [row(0, 0, 0)]
    for k in range(1, 251):  # contact k: step 1 complete, then step 2 active
        rows += [row(2 * k - 1, k, 0, "complete"), row(2 * k, k, 1, "active")]
    route = contacts_route(router).mock(
        side_effect=by_offset(
            {0: {"data": rows[:500], "total": 501}, 500: {"data": rows[500:], "total": 501}}
        )
    )
    source = make_source(http)
    assert source.incremental is False

    pages = await collect(source)

    assert len(pages) == 1
    page = pages[0]
    assert page.sequence == SequenceRef(id=SEQ, name="Q4 outreach")
    assert page.where == f"sequence {SEQ}, contacts (2 pages)"
    assert len(page.records) == 251
    split = page.records[250]  # its rows are the last of page 1 and the only one of page 2
    assert split["contact"]["id"] == "c250"
    assert [(r["id"], r["status"]) for r in split["rows"]] == [
        ("row-499", "complete"),
        ("row-500", "active"),
    ]
    first = page.records[0]
    assert first["sequence_id"] == SEQ
    assert first["steps"] == {"s0": 0, "s1": 1, "s2": 2}
    assert "last_position" not in first
    assert first["steps"] is split["steps"]  # one dict per sequence, not per contact
    # Only the fields the normalizer reads are kept: no message bodies in memory.
    assert set(first["rows"][0]) == {"id", "status", "step_id", "created_at", "updated_at",
                                     "unsubscribed"}  # fmt: skip
    assert offsets(route) == [0, 500]
    assert route.calls.last.request.headers["X-WHIPPY-KEY"] == KEY


async def test_rows_of_one_contact_on_different_pages_fold_together(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    one_sequence(router)
    contacts_route(router).mock(
        side_effect=by_offset(
            {
                0: {"data": [row(0, 1, 0, "complete"), row(1, 2, 0)], "total": 3},
                2: {"data": [row(2, 1, 1, "active")], "total": 3},
            }
        )
    )
    [page] = await collect(make_source(http))
    assert [(r["contact"]["id"], [x["id"] for x in r["rows"]]) for r in page.records] == [
        ("c1", ["row-0", "row-2"]),
        ("c2", ["row-1"]),
    ]


async def test_a_short_page_before_total_is_not_the_end(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    # The API may cap `limit` below what we asked: advance by what came back, up to `total`.
    one_sequence(router)
    route = contacts_route(router).mock(
        side_effect=by_offset(
            {
                0: {"data": [row(n, n, 0) for n in range(100)], "total": 150},
                100: {"data": [row(n, n, 0) for n in range(100, 150)], "total": 150},
            }
        )
    )
    [page] = await collect(make_source(http))
    assert len(page.records) == 150
    assert offsets(route) == [0, 100]


async def test_total_growing_mid_listing_reads_on_and_overlap_is_harmless(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    # Two rows were inserted ahead of us between the pages: the last two rows of page 1 are
    # pushed onto page 2 (read twice, folded once); the inserted ones show up next poll.
    one_sequence(router)
    first = [row(n, n, 0) for n in range(500)]
    again = [row(n, n, 0) for n in range(498, 600)]
    route = contacts_route(router).mock(
        side_effect=by_offset(
            {0: {"data": first, "total": 600}, 500: {"data": again, "total": 602}}
        )
    )
    [page] = await collect(make_source(http))
    assert len(page.records) == 600
    assert [len(r["rows"]) for r in page.records[497:500]] == [1, 1, 1]  # deduplicated by id
    assert offsets(route) == [0, 500]


async def test_total_shrinking_mid_listing_steps_back_over_shifted_rows(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    # After page 1 (rows 0-4), rows 1 and 2 are deleted: rows 5 and 6 shift to offsets 3 and 4.
    one_sequence(router)
    remaining = [row(n, n, 0) for n in (0, 3, 4, 5, 6, 7, 8)]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        calls.append(offset)
        if len(calls) == 1:
            return httpx.Response(200, json={"data": [row(n, n, 0) for n in range(5)], "total": 9})
        return httpx.Response(
            200, json={"data": remaining[offset : offset + limit], "total": len(remaining)}
        )

    contacts_route(router).mock(side_effect=handler)
    source = WhippySource(name="w", client=make_client(http), sequences=(), page_size=5)
    [page] = await collect(source)
    assert sorted(r["contact"]["id"] for r in page.records) == [f"c{n}" for n in range(9)]
    assert calls == [0, 5, 3]  # page 2 saw total 7 (was 9): step back 2 and read on


async def test_without_total_a_short_page_ends_the_listing(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    one_sequence(router)
    route = contacts_route(router).mock(
        side_effect=by_offset(
            {0: {"data": [row(n, n, 0) for n in range(500)]}, 500: {"data": [row(500, 500, 0)]}}
        )
    )
    [page] = await collect(make_source(http))
    assert len(page.records) == 501
    assert offsets(route) == [0, 500]


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        ({0: {"data": [], "total": 3}}, r"empty page before the end \(field 'total' is 3\)"),
        ({0: {"data": [row(0, 0, 0), row(1, 1, 0)], "total": 1}}, "page runs past field 'total'"),
        ({0: {"data": [row(n, n, 0) for n in range(501)], "total": 600}}, "more than limit=500"),
    ],
)
async def test_inconsistent_pages_are_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, pages: dict[int, Any], message: str
) -> None:
    one_sequence(router)
    contacts_route(router).mock(side_effect=by_offset(pages))
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert f"sequence {SEQ}, contacts page 1 (offset=0)" in str(info.value)


async def test_a_page_served_twice_is_a_pagination_loop(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    one_sequence(router)
    same = {"data": [row(n, n, 0) for n in range(500)], "total": 1500}
    contacts_route(router).mock(side_effect=by_offset({0: same, 500: same}))
    with pytest.raises(MalformedResponse, match="page repeats the previous page") as info:
        await collect(make_source(http))
    assert "contacts page 2 (offset=500)" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"total": 0}, "missing field 'data'"),
        ({"data": None, "total": 0}, "field 'data' is null, expected an array"),
        ({"data": ["x"], "total": 1}, r"field 'data'\[0\] is a string"),
        ({"data": [], "total": "0"}, "field 'total' is not a non-negative integer"),
        ({"data": [], "total": -1}, "field 'total' is not a non-negative integer"),
        ({"data": [], "total": True}, "field 'total' is not a non-negative integer"),
        ([], "response is an array, expected an object"),
    ],
)
async def test_bad_contacts_envelope_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, body: Any, message: str
) -> None:
    one_sequence(router)
    contacts_route(router).respond(200, json=body)
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert "contacts page 1 (offset=0)" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    "change", [{"contact": None}, {"contact": {"name": "x"}}, {"contact": {"id": ""}}]
)
async def test_a_row_without_a_contact_id_is_passed_on_alone_as_an_unreadable_record(
    router: respx.MockRouter, http: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    one_sequence(router)
    contacts_route(router).respond(200, json={"data": [row(0, 0, 0), row(1, 1, 0) | change],
                                              "total": 2})  # fmt: skip
    [page] = await collect(make_source(http))
    # The sequence's other contacts may have lost a row too: left as stored this poll.
    [orphan] = page.records
    with pytest.raises(UnreadableId, match="contact"):
        whippy_normalize(orphan, page=page)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": SEQ}, "field 'data' is missing or not an object"),
        ({"data": {"id": SEQ}}, "missing field 'steps'"),
        ({"data": {"steps": [{"id": "s0"}]}}, "field 'position' is missing"),
        ({"data": {"steps": [{"id": "s0", "position": -1}]}}, "not a non-negative integer"),
        ({"data": {"steps": [{"id": "s0", "position": True}]}}, "not a non-negative integer"),
        ({"data": {"steps": [{"position": 0}]}}, "missing field 'id'"),
        ({"data": {"steps": [{"id": "s0", "position": 0}], "title": 3}}, "field 'title'"),
    ],
)
async def test_bad_sequence_detail_is_malformed(
    router: respx.MockRouter, http: httpx.AsyncClient, body: Any, message: str
) -> None:
    router.get("/v1/sequences").respond(200, json={"data": [{"id": SEQ}], "total": 1})
    contacts_route(router).respond(200, json={"data": [row(1, 1, 0)], "total": 1})
    router.get(f"/v1/sequences/{SEQ}").respond(200, json=body)
    with pytest.raises(MalformedResponse, match=message) as info:
        await collect(make_source(http))
    assert f"sequence {SEQ}, steps" in str(info.value)


async def test_steps_are_read_after_the_rows_and_name_the_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    order: list[str] = []

    def answer(name: str, body: dict[str, Any]) -> Handler:
        def handler(request: httpx.Request) -> httpx.Response:
            order.append(name)
            return httpx.Response(200, json=body)

        return handler

    router.get("/v1/sequences").respond(200, json={"data": [{"id": SEQ}], "total": 1})
    contacts_route(router).mock(side_effect=answer("rows", {"data": [row(1, 1, 0)], "total": 1}))
    router.get(f"/v1/sequences/{SEQ}").mock(side_effect=answer("steps", detail("From detail")))
    [page] = await collect(make_source(http))
    assert page.sequence == SequenceRef(id=SEQ, name="From detail")
    assert len(page.records) == 1
    assert order == ["rows", "steps"]  # steps added while the rows were read are known


async def test_allow_list_skips_other_sequences_and_stops_listing_early(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    listing = router.get("/v1/sequences").mock(
        side_effect=by_offset(
            {0: {"data": [{"id": "a", "title": "A"}, {"id": SEQ, "title": "B"}], "total": 9}}
        )
    )
    skipped = router.get("/v1/sequences/a/contacts").respond(200, json={"data": [], "total": 0})
    contacts_route(router).respond(200, json={"data": [row(0, 0, 0)], "total": 1})
    router.get(f"/v1/sequences/{SEQ}").respond(200, json={"data": {"steps": []}})
    pages = await collect(make_source(http, sequences=(SEQ,)))
    assert [p.sequence for p in pages] == [SequenceRef(id=SEQ, name="B")]
    assert skipped.call_count == 0
    assert listing.call_count == 1  # every named sequence was found on page 1


async def test_allow_listed_ids_the_listing_hides_are_listed_too(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").respond(200, json={"data": [{"id": SEQ, "title": "B"}], "total": 1})
    contacts_route(router).respond(200, json={"data": [], "total": 0})
    router.get(f"/v1/sequences/{SEQ}").respond(200, json={"data": {"steps": []}})
    unlisted = router.get("/v1/sequences/zz/contacts").respond(200, json={"data": [], "total": 0})
    router.get("/v1/sequences/zz").respond(200, json={"data": {"title": "Z", "steps": []}})
    pages = await collect(make_source(http, sequences=(SEQ, "zz")))
    assert [p.sequence for p in pages] == [
        SequenceRef(id=SEQ, name="B"),
        SequenceRef(id="zz", name=None),  # empty: its detail is not worth a request
    ]
    assert unlisted.call_count == 1


async def test_sequence_listing_pages_to_total(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    listing = router.get("/v1/sequences").mock(
        side_effect=by_offset(
            {
                0: {"data": [{"id": "a", "title": "A"}, {"id": "b"}], "total": 3},
                2: {"data": [{"id": "c", "title": None}], "total": 3},
            }
        )
    )
    for name in "abc":
        router.get(f"/v1/sequences/{name}/contacts").respond(200, json={"data": [], "total": 0})
        router.get(f"/v1/sequences/{name}").respond(200, json={"data": {"steps": []}})
    pages = await collect(make_source(http))
    assert [p.sequence for p in pages] == [
        SequenceRef(id="a", name="A"),
        SequenceRef(id="b"),
        SequenceRef(id="c"),
    ]
    assert offsets(listing) == [0, 2]


async def test_a_refused_page_size_falls_back_to_100_for_good(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    refusal = {"errors": [{"description": "must be less than or equal to 100", "field": "limit"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        if limit > 100:
            return httpx.Response(422, json=refusal | {"status": 422})
        data = [{"id": f"q{n}"} for n in range(150)][offset : offset + limit]
        return httpx.Response(200, json={"data": data, "total": 150})

    listing = router.get("/v1/sequences").mock(side_effect=handler)
    router.get(url__regex=r"/v1/sequences/q\d+/contacts").respond(
        200, json={"data": [], "total": 0}
    )
    router.get(url__regex=r"/v1/sequences/q\d+$").respond(200, json={"data": {"steps": []}})
    sleeps = Sleeps()
    pages = await collect(make_source(http, sleep=sleeps))
    assert len(pages) == 150
    limits = [call.request.url.params["limit"] for call in listing.calls]
    assert limits == ["500", "100", "100"]
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [401, 404])
async def test_other_rejections_do_not_fall_back(
    router: respx.MockRouter, http: httpx.AsyncClient, status: int
) -> None:
    route = router.get("/v1/sequences").respond(
        status, json={"errors": [{"description": "Not authenticated"}], "status": status}
    )
    with pytest.raises(SourceRejected) as info:
        await collect(make_source(http))
    assert route.call_count == 1
    assert KEY not in str(info.value)


async def test_validation_error_is_one_clear_line(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    body = {"errors": [{"description": "is invalid", "field": "offset"},
                       {"description": "Something\nelse"}], "status": 422}  # fmt: skip
    route = router.get("/v1/sequences").respond(422, json=body)
    with pytest.raises(SourceRejected) as info:
        await collect(make_source(http))
    assert route.call_count == 2  # the page size fallback tried once more, at limit=100
    assert str(info.value) == (
        "source 'whippy-us': sequences page 1 (offset=0): request rejected (HTTP 422); "
        "provider said: offset: is invalid; Something else"
    )


async def test_401_names_the_providers_reason(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").respond(
        401, json={"errors": [{"description": "Not authenticated"}], "status": 401}
    )
    with pytest.raises(SourceRejected, match="check api_key; provider said: Not authenticated"):
        await make_source(http).check()


def test_error_text_shapes() -> None:
    assert error_text({"errors": [{"description": "Not authenticated"}], "status": 401}) == (
        "Not authenticated"
    )
    assert error_text({"errors": [{"description": "a"}, "junk", {"description": 4}]}) == "a"
    assert error_text({"errors": [], "message": "fallback"}) == "fallback"
    assert error_text(["not", "an", "object"]) is None
    assert error_text({"errors": [{"code": "x"}]}) is None
    assert error_text({"errors": {"detail": "Not Found"}}) == "Not Found"
    assert error_text({"errors": {"limit": ["is too big", 3], "offset": "bad"}}) == (
        "limit: is too big; offset: bad"
    )


async def test_429_waits_the_millisecond_header(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={whippy.RETRY_MS_HEADER: "2500"},
                json={"errors": [{"description": "Too many requests"}], "status": 429},
            ),
            httpx.Response(200, json={"data": [], "total": 0}),
        ]
    )
    sleeps = Sleeps()
    assert await collect(make_source(http, sleep=sleeps)) == []
    assert sleeps.calls == [2.5]


async def test_429_without_a_header_backs_off(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").mock(
        side_effect=[
            httpx.Response(429),
            httpx.Response(429),
            httpx.Response(200, json={"data": []}),
        ]
    )
    sleeps = Sleeps()
    assert await collect(make_source(http, sleep=sleeps)) == []
    assert len(sleeps.calls) == 2
    assert 0.25 <= sleeps.calls[0] <= 0.5
    assert 0.5 <= sleeps.calls[1] <= 1.0


async def test_429_beyond_budget_is_unavailable(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").respond(429, headers={whippy.RETRY_MS_HEADER: "600000"})
    with pytest.raises(SourceUnavailable, match="retry after 600 s"):
        await collect(make_source(http))


async def test_check_asks_for_one_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.get("/v1/sequences").respond(200, json={"data": [], "total": 0})
    await make_source(http).check()
    assert dict(route.calls.last.request.url.params) == {"limit": "1"}
    assert route.calls.last.request.headers["X-WHIPPY-KEY"] == KEY


async def test_sequence_ids_are_escaped_in_paths(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").respond(200, json={"data": [], "total": 0})
    route = router.get(url__regex=r"/v1/sequences/a%2F\.\.%2Fb/contacts").respond(
        200, json={"data": [], "total": 0}
    )
    router.get(url__regex=r"/v1/sequences/a%2F\.\.%2Fb$").respond(200, json={"data": {"steps": []}})
    await collect(make_source(http, sequences=("a/../b",)))
    assert route.call_count == 1


def test_registry_and_reprs_hide_the_key(http: httpx.AsyncClient) -> None:
    info = PROVIDERS["whippy"]
    assert info.default_base_url == BASE
    assert info.requests_per_second < 25  # under the documented 25 req/s
    assert info.incremental is False
    params = SourceParams(name="w", api_key=KEY, base_url=None, sequences=(), http=http)
    source = build_source("whippy", params)
    assert isinstance(source, WhippySource)
    assert KEY not in repr(params)
    assert KEY not in repr(source)
    with pytest.raises(ConfigError, match="unknown provider"):
        build_source("whipy", params)


def test_page_size_is_bounded(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="page_size"):
        WhippySource(name="w", client=make_client(http), sequences=(), page_size=501)


def make_client(http: httpx.AsyncClient) -> ProviderClient:
    return ProviderClient(
        source="w",
        http=http,
        base_url=BASE,
        headers={whippy.AUTH_HEADER: KEY},
        limiter=NoLimit(),
        sleep=Sleeps(),
    )


async def test_replies_come_from_the_responded_filter_at_one_request_per_sequence(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v1/sequences").respond(
        200, json={"data": [{"id": SEQ, "title": "A"}, {"id": "empty", "title": "B"}], "total": 2}
    )
    responded = responded_route(router).respond(
        200,
        json={"data": [row(9, 2, 1)], "total": 1},  # contact 2 responded (on step 2)
    )
    rows = contacts_route(router).respond(
        200, json={"data": [row(1, 1, 0), row(2, 2, 0, "complete"), row(3, 2, 1)], "total": 3}
    )
    steps = router.get(f"/v1/sequences/{SEQ}").respond(200, json=detail())
    empty_rows = router.get("/v1/sequences/empty/contacts").respond(
        200, json={"data": [], "total": 0}
    )
    empty_detail = router.get("/v1/sequences/empty")
    pages = await collect(make_source(http))
    records = {r["contact"]["id"]: r for p in pages for r in p.records}
    assert {c: r["responded"] for c, r in records.items()} == {"c1": False, "c2": True}
    # Rows carry no `responded` of their own: only the filter says who replied.
    assert all("responded" not in row for r in records.values() for row in r["rows"])
    assert (rows.call_count, responded.call_count, steps.call_count) == (1, 1, 1)
    assert dict(responded.calls.last.request.url.params) == {
        "responded": "true",
        "limit": "500",
        "offset": "0",
    }
    # A sequence without contacts costs its one listing request, nothing more.
    assert (empty_rows.call_count, empty_detail.call_count) == (1, 0)
