"""The shared pagers against respx: the same code pages Reply.io (hasMore) and Whippy (total);
the cursor pager pages a Unify-shaped listing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from worker.errors import MalformedResponse
from worker.sources import replyio, whippy
from worker.sources.http import ProviderClient
from worker.sources.paging import CursorPager, CursorPaging, OffsetPager

BASE = "https://api.example.test"
UNIFY_STYLE = CursorPaging(
    limit_param="limit",
    cursor_param="cursor",
    items_key="enrollments",
    next_key="next_cursor",
    max_page_size=100,
)


class NoLimit:
    async def acquire(self) -> None:
        return None


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[ProviderClient]:
    async with httpx.AsyncClient() as http:
        yield ProviderClient(
            source="s", http=http, base_url=BASE, headers={}, limiter=NoLimit(), max_attempts=1
        )


async def collect(pages: Any) -> list[tuple[list[Any], str]]:
    return [page async for page in pages]


def ids(n: int, start: int = 0) -> list[dict[str, int]]:
    return [{"id": i} for i in range(start, start + n)]


async def test_has_more_paging_advances_by_what_came_back(
    router: respx.MockRouter, client: ProviderClient
) -> None:
    answers = {
        "0": {"items": ids(2), "hasMore": True},  # the API capped `top` at 2
        "2": {"info": {"hasMore": False}, "items": ids(1, 2)},  # older `info` wrapping
    }
    route = router.get("/things").mock(
        side_effect=lambda r: httpx.Response(200, json=answers[r.url.params["skip"]])
    )
    pager = OffsetPager(client, replyio.PAGING, source="s", page_size=5)
    pages = await collect(pager.pages("/things", label="things", params={"sort_by": "x"}))
    assert [(len(items), where) for items, where in pages] == [
        (2, "things page 1 (skip=0)"),
        (1, "things page 2 (skip=2)"),
    ]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"sort_by": "x", "top": "5", "skip": "0"},
        {"sort_by": "x", "top": "5", "skip": "2"},
    ]


async def test_total_paging_ends_at_total_and_steps_back_when_it_shrinks(
    router: respx.MockRouter, client: ProviderClient
) -> None:
    answers = {
        "0": {"data": ids(2), "total": 5},
        "2": {"data": ids(2, 3), "total": 4},  # one row before offset 2 was deleted
        "1": {"data": ids(2, 2), "total": 4},
        "3": {"data": ids(1, 4), "total": 4},
    }
    route = router.get("/rows").mock(
        side_effect=lambda r: httpx.Response(200, json=answers[r.url.params["offset"]])
    )
    pager = OffsetPager(client, whippy.PAGING, source="s", page_size=2)
    await collect(pager.pages("/rows", label="rows"))
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "2", "1", "3"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"items": [], "hasMore": True}, "'hasMore' is true but the page is empty"),
        ({"items": ids(6), "hasMore": False}, "more than top=5"),
        ({"hasMore": False}, "missing field 'items'"),
    ],
)
async def test_offset_pager_refuses_what_would_truncate_a_listing(
    router: respx.MockRouter, client: ProviderClient, body: dict[str, Any], problem: str
) -> None:
    router.get("/things").respond(200, json=body)
    pager = OffsetPager(client, replyio.PAGING, source="s", page_size=5)
    with pytest.raises(MalformedResponse, match=problem):
        await collect(pager.pages("/things", label="things"))


async def test_a_page_served_twice_is_a_loop(
    router: respx.MockRouter, client: ProviderClient
) -> None:
    router.get("/things").respond(200, json={"items": ids(2), "hasMore": True})
    pager = OffsetPager(client, replyio.PAGING, source="s", page_size=2)
    with pytest.raises(MalformedResponse, match="page repeats the previous page"):
        await collect(pager.pages("/things", label="things"))


async def test_cursor_pager_follows_next_cursor_to_null(
    router: respx.MockRouter, client: ProviderClient
) -> None:
    answers = {
        None: {"enrollments": ids(2), "next_cursor": "c2"},
        "c2": {"enrollments": ids(1, 2), "next_cursor": None},
    }
    route = router.get("/enrollments").mock(
        side_effect=lambda r: httpx.Response(200, json=answers[r.url.params.get("cursor")])
    )
    pager = CursorPager(client, UNIFY_STYLE, source="s")
    pages = await collect(pager.pages("/enrollments", label="enrollments", params={"a": "b"}))
    assert [where for _, where in pages] == ["enrollments page 1", "enrollments page 2"]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"a": "b", "limit": "100"},
        {"a": "b", "limit": "100", "cursor": "c2"},
    ]


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ({"enrollments": [], "next_cursor": "c2"}, "cursor repeated"),
        ({"enrollments": [], "next_cursor": ""}, "is an empty string"),
    ],
)
async def test_cursor_pager_refuses_loops_and_empty_cursors(
    router: respx.MockRouter, client: ProviderClient, second: dict[str, Any], problem: str
) -> None:
    answers = {None: {"enrollments": ids(1), "next_cursor": "c2"}, "c2": second}
    router.get("/enrollments").mock(
        side_effect=lambda r: httpx.Response(200, json=answers[r.url.params.get("cursor")])
    )
    with pytest.raises(MalformedResponse, match=problem):
        await collect(CursorPager(client, UNIFY_STYLE, source="s").pages("/enrollments", label="e"))
