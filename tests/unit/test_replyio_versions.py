"""Reply.io API version choice (auto-detected, remembered, re-detected on 404), archived
sequences listed only on the full-sync interval, and an allow-listed source's sequence listing
remembered between polls, against a respx-mocked API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from worker.errors import SourceRejected, SourceUnavailable
from worker.sources.base import RawPage
from worker.sources.known_sequences import MAX_AGE
from worker.sources.params import LocalMemory
from worker.sources.registry import SourceParams, build_source
from worker.sources.replyio import MEMORY_DEEP, MEMORY_SEQUENCES, MEMORY_VERSION, ReplyioSource

BASE = "https://api.reply.io"
KEY = "reply-api-key-DO-NOT-LEAK-42"
DAY = 86_400.0


class NoLimit:
    async def acquire(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


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
    memory: LocalMemory,
    *,
    api_version: str = "auto",
    clock: Clock | None = None,
    sequences: tuple[str, ...] = (),
) -> ReplyioSource:
    params = SourceParams(
        name="reply-emea",
        api_key=KEY,
        base_url=None,
        sequences=sequences,
        http=http,
        limiter=NoLimit(),
        memory=memory,
        api_version=api_version,
    )
    source = build_source("replyio", params)
    assert isinstance(source, ReplyioSource)
    if clock is not None:
        source._clock = clock
    return source


def v3_contact(sequence: int, contact: int) -> dict[str, Any]:
    return {
        "contactId": contact,
        "sequenceId": sequence,
        "statusInSequence": "active",
        "emailDisposition": {"isReplied": False, "isBounced": False},
        "currentStep": {"stepId": 1, "displayName": "1"},
        "isOptedOut": False,
    }


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items), "hasMore": False}


async def collect(source: ReplyioSource) -> list[RawPage]:
    return [page async for page in source.pages()]


def mock_account(router: respx.MockRouter, version: str, sequences: list[dict[str, Any]]) -> None:
    router.get(f"/{version}/sequences").respond(200, json=listing(*sequences))
    for sequence in sequences:
        router.get(f"/{version}/sequences/{sequence['id']}/contacts").respond(
            200, json=listing(v3_contact(sequence["id"], 1))
        )


async def test_auto_detects_v3_first_remembers_it_and_logs_it(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", [{"id": 7, "name": "Q4", "status": "active", "isArchived": False}])
    v4 = router.get(url__startswith=f"{BASE}/v4/")
    memory = LocalMemory()
    with capture_logs() as logs:
        pages = await collect(make_source(http, memory))
    assert [p.extra["api_version"] for p in pages] == ["v3"]
    assert memory.values[MEMORY_VERSION] == "v3"
    detected = [e for e in logs if e["event"] == "replyio_api_version_detected"]
    assert detected == [
        {
            "event": "replyio_api_version_detected",
            "source": "reply-emea",
            "api_version": "v3",
            "previous": None,
            "log_level": "info",
        }
    ]
    probe = router.calls[0].request
    assert (probe.url.path, dict(probe.url.params)) == ("/v3/sequences", {"top": "1"})
    assert probe.headers["X-API-Key"] == KEY
    assert probe.headers["Authorization"] == f"Bearer {KEY}"
    assert v4.call_count == 0
    # Remembered: the next poll does not probe again.
    calls = len(router.calls)
    await collect(make_source(http, memory))
    assert [c.request.url.path for c in router.calls[calls:]] == [
        "/v3/sequences",
        "/v3/sequences/7/contacts",
    ]


async def test_a_v4_only_account_is_detected_after_v3_answers_404(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(url__startswith=f"{BASE}/v3/").respond(404, json={"title": "Not Found"})
    mock_account(router, "v4", [{"id": 9, "name": "A", "status": "Active", "isArchived": False}])
    memory = LocalMemory()
    pages = await collect(make_source(http, memory))
    assert [(p.sequence.id if p.sequence else None, p.extra["api_version"]) for p in pages] == [
        ("9", "v4")
    ]
    assert memory.values[MEMORY_VERSION] == "v4"


async def test_a_404_on_the_remembered_version_detects_again_within_the_poll(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(url__startswith=f"{BASE}/v4/").respond(404)
    mock_account(router, "v3", [{"id": 7, "name": "Q4", "status": "active"}])
    memory = LocalMemory()
    memory.values[MEMORY_VERSION] = "v4"
    with capture_logs() as logs:
        pages = await collect(make_source(http, memory))
    assert [p.extra["api_version"] for p in pages] == ["v3"]
    assert memory.values[MEMORY_VERSION] == "v3"
    assert [e["previous"] for e in logs if e["event"] == "replyio_api_version_detected"] == ["v4"]


async def test_neither_version_answering_is_a_rejection_naming_base_url(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(url__startswith=f"{BASE}/").respond(404)
    memory = LocalMemory()
    with pytest.raises(SourceRejected, match="check base_url") as info:
        await collect(make_source(http, memory))
    assert KEY not in str(info.value)
    assert MEMORY_VERSION not in memory.values


async def test_a_configured_version_is_used_without_probing(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v4", [{"id": 9, "name": "A", "status": "Active"}])
    memory = LocalMemory()
    pages = await collect(make_source(http, memory, api_version="v4"))
    assert [c.request.url.path for c in router.calls] == [
        "/v4/sequences",
        "/v4/sequences/9/contacts",
    ]
    assert pages[0].extra["api_version"] == "v4"
    assert memory.values[MEMORY_VERSION] == "v4"  # what `status` shows


async def test_a_configured_version_answering_404_fails_without_probing(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(url__startswith=f"{BASE}/v4/").respond(404)
    v3 = router.get(url__startswith=f"{BASE}/v3/").respond(200, json=listing())
    with pytest.raises(SourceRejected, match="HTTP 404"):
        await collect(make_source(http, LocalMemory(), api_version="v4"))
    assert v3.call_count == 0


async def test_a_404_on_a_contacts_listing_fails_the_poll_and_forgets_the_version(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get("/v3/sequences").respond(200, json=listing({"id": 7, "name": "Q4"}))
    router.get("/v3/sequences/7/contacts").respond(404)
    memory = LocalMemory()
    memory.values[MEMORY_VERSION] = "v3"
    with pytest.raises(SourceRejected, match="HTTP 404"):
        await collect(make_source(http, memory))
    assert MEMORY_VERSION not in memory.values  # the next poll detects again


SEQUENCES = [
    {"id": 1, "name": "Live", "status": "active", "isArchived": False},
    {"id": 2, "name": "Old", "status": "archived", "isArchived": True},
    {"id": 3, "name": "Older", "status": "Archived"},  # v4 style, no flag
    {"id": 4, "name": "Paused", "status": "paused", "isArchived": False},
]


async def test_archived_sequences_are_listed_only_on_the_full_sync_interval(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", SEQUENCES)
    memory, clock = LocalMemory(), Clock()
    source = make_source(http, memory, api_version="v3", clock=clock)

    def listed(pages: list[RawPage]) -> list[str]:
        return [p.sequence.id for p in pages if p.sequence is not None]

    first = await collect(source)  # nothing remembered: everything, archived included
    assert listed(first) == ["1", "2", "3", "4"]
    assert all(not p.skipped_sequences for p in first)
    assert memory.values[MEMORY_DEEP] == repr(clock.now)

    clock.now += 300
    ordinary = await collect(source)
    assert listed(ordinary) == ["1", "4"]
    assert [p.skipped_sequences for p in ordinary if p.skipped_sequences] == [("2", "3")]
    assert ordinary[0].records == []  # the skip notice carries no records

    clock.now += DAY
    assert listed(await collect(source)) == ["1", "2", "3", "4"]


async def test_a_failed_full_listing_does_not_count_as_one(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", SEQUENCES)
    router.get("/v3/sequences/4/contacts").respond(500)
    memory = LocalMemory()
    source = make_source(http, memory, api_version="v3")
    source._client._max_attempts = 1
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        await collect(source)
    assert MEMORY_DEEP not in memory.values  # the next poll lists archived sequences again


async def test_check_detects_again_when_the_remembered_version_is_gone(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.get(url__startswith=f"{BASE}/v4/").respond(404)
    router.get("/v3/sequences").respond(200, json=listing())
    memory = LocalMemory()
    memory.values[MEMORY_VERSION] = "v4"
    await make_source(http, memory).check()
    assert memory.values[MEMORY_VERSION] == "v3"
    with pytest.raises(SourceRejected, match="HTTP 404"):
        await make_source(http, LocalMemory(), api_version="v4").check()


def requested(router: respx.MockRouter, since: int) -> list[str]:
    return [c.request.url.path for c in router.calls[since:]]


def named(pages: list[RawPage]) -> list[tuple[str, str | None]]:
    return [(p.sequence.id, p.sequence.name) for p in pages if p.sequence is not None]


async def test_an_allow_listed_source_reuses_its_sequence_listing_for_an_hour(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", SEQUENCES)
    router.get("/v3/sequences/9/contacts").respond(200, json=listing())
    memory, clock = LocalMemory(), Clock()
    source = make_source(http, memory, api_version="v3", clock=clock, sequences=("1", "2", "9"))
    first = await collect(source)  # the full-sync listing: archived sequence 2 too
    assert requested(router, 0) == [
        "/v3/sequences",
        "/v3/sequences/1/contacts",
        "/v3/sequences/2/contacts",
        "/v3/sequences/9/contacts",  # allow-listed though not in the listing
    ]
    assert named(first) == [("1", "Live"), ("2", "Old"), ("9", None)]

    # A later poll asks only for contacts, names its sequences as the listing did, and still
    # skips the archived one between full syncs.
    router.get("/v3/sequences").respond(200, json=listing({"id": 1, "name": "Renamed"}))
    clock.now += MAX_AGE - 1
    calls = len(router.calls)
    later = await collect(source)
    assert requested(router, calls) == ["/v3/sequences/1/contacts", "/v3/sequences/9/contacts"]
    assert named(later) == [("1", "Live"), ("9", None)]
    assert [p.skipped_sequences for p in later if p.skipped_sequences] == [("2",)]

    # An hour after it was read, the listing is read again (and remembered again).
    clock.now += 1
    calls = len(router.calls)
    assert named(await collect(source)) == [("1", "Renamed"), ("2", None), ("9", None)]
    assert requested(router, calls)[0] == "/v3/sequences"
    calls = len(router.calls)
    await collect(source)
    assert "/v3/sequences" not in requested(router, calls)


async def test_a_source_without_an_allow_list_reads_the_sequence_listing_every_poll(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """The listing is how a poll finds a new sequence: nothing is remembered."""
    mock_account(router, "v3", SEQUENCES[:1])
    memory = LocalMemory()
    source = make_source(http, memory, api_version="v3")
    await collect(source)
    mock_account(router, "v3", [*SEQUENCES[:1], {"id": 5, "name": "New", "status": "active"}])
    calls = len(router.calls)
    assert named(await collect(source)) == [("1", "Live"), ("5", "New")]
    assert requested(router, calls)[0] == "/v3/sequences"
    assert MEMORY_SEQUENCES not in memory.values


async def test_a_remembered_listing_serves_only_its_own_allow_list_and_version(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", SEQUENCES)
    mock_account(router, "v4", SEQUENCES)
    memory, clock = LocalMemory(), Clock()
    await collect(make_source(http, memory, api_version="v3", clock=clock, sequences=("1",)))
    for changed in (
        make_source(http, memory, api_version="v3", clock=clock, sequences=("1", "4")),
        make_source(http, memory, api_version="v4", clock=clock, sequences=("1", "4")),
    ):
        calls = len(router.calls)
        await collect(changed)
        assert requested(router, calls)[0].endswith("/sequences")


async def test_a_remembered_listing_the_memory_garbled_is_read_again(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_account(router, "v3", SEQUENCES)
    memory, clock = LocalMemory(), Clock()
    source = make_source(http, memory, api_version="v3", clock=clock, sequences=("1",))
    await collect(source)
    memory.values[MEMORY_SEQUENCES] = memory.values[MEMORY_SEQUENCES][:-5]
    calls = len(router.calls)
    assert named(await collect(source)) == [("1", "Live")]
    assert requested(router, calls) == ["/v3/sequences", "/v3/sequences/1/contacts"]
