"""The fake Zendesk Sell API over real local HTTP, and the real source + normalizer against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from worker.demo import zendesk_sell as demo_zendesk_sell
from worker.demo.fakes.faults import FaultPlan
from worker.demo.fakes.server import FakeServer, Mount
from worker.demo.fakes.unify import ManualClock
from worker.demo.fakes.zendesk_sell import ZendeskSellApp, ZendeskSellWorld
from worker.detect.diff import transitions
from worker.errors import MalformedResponse, SourceRejected
from worker.normalize import zendesk_sell as normalize
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.zendesk_sell import ZendeskSellSource, error_text

TOKEN = "sell-token-123456"
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
ENROLLMENTS = "/v2/sequence_enrollments"
FIXTURE_FIELDS = {
    "id", "actor_id", "resource_type", "resource_id", "created_at", "sequence", "state",
    "previously_executed_step_position", "enrollment_steps", "finished_at", "finished_reason",
    "finished_actor_id",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sell:
    client: httpx.Client
    world: ZendeskSellWorld
    app: ZendeskSellApp
    faults: FaultPlan
    server: FakeServer
    sequence: int


@pytest.fixture
def sell() -> Iterator[Sell]:
    world = ZendeskSellWorld(clock=ManualClock(T0))
    sequence = world.add_sequence("Q4 outbound", steps=3)
    for _ in range(60):
        world.enroll(sequence)
    faults = FaultPlan()
    app = ZendeskSellApp(world, api_key=TOKEN, faults=faults)
    with FakeServer(app) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=5) as client:
            yield Sell(client, world, app, faults, server, sequence)
        faults.wake()


def listing(s: Sell, **params: Any) -> dict[str, Any]:
    resp = s.client.get(ENROLLMENTS, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def ids_of(body: dict[str, Any]) -> list[int]:
    return [item["data"]["id"] for item in body["items"]]


def first_error(resp: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = resp.json()["errors"][0]["error"]
    return error


# -- the fake ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"X-API-Key": TOKEN}],
)
def test_rejects_bad_credentials_with_the_error_envelope(
    sell: Sell, headers: dict[str, str]
) -> None:
    resp = httpx.get(f"{sell.server.base_url}{ENROLLMENTS}", headers=headers)
    assert resp.status_code == 401
    assert first_error(resp)["code"] == "unauthorized"
    assert resp.json()["meta"]["http_status"] == "401 Unauthorized"


def test_requires_a_user_agent(sell: Sell) -> None:
    resp = sell.client.get(ENROLLMENTS, headers={"User-Agent": ""})
    assert resp.status_code == 400
    assert first_error(resp)["code"] == "invalid_user_agent"


def test_enrollment_has_the_fixture_shape(sell: Sell) -> None:
    body = listing(sell, per_page=1)
    item = body["items"][0]
    assert item["meta"] == {"type": "sequence_enrollment"}
    data = item["data"]
    assert set(data) == FIXTURE_FIELDS
    assert data["state"] == "active"
    assert data["previously_executed_step_position"] == 0
    assert data["sequence"]["meta"] == {"type": "sequence"}
    assert data["sequence"]["data"]["name"] == "Q4 outbound"
    assert data["sequence"]["data"]["steps_total"] == 3
    steps = data["enrollment_steps"]
    assert steps["meta"] == {"type": "collection", "count": 3}
    actions = [s["data"]["action"]["data"]["status"] for s in steps["items"]]
    assert actions == ["scheduled", "pending", "pending"]
    assert body["meta"]["type"] == "collection"
    assert body["meta"]["count"] == 1


def test_pages_to_the_end_with_next_page_links(sell: Sell) -> None:
    sell.app.links = True
    seen: list[int] = []
    links: list[dict[str, str]] = []
    page = 1
    while True:
        body = listing(sell, page=page)  # documented default per_page: 25
        seen += ids_of(body)
        links.append(body["meta"]["links"])
        if "next_page" not in body["meta"]["links"]:
            break
        page += 1
    assert len(seen) == 60
    assert seen == sorted(seen)
    assert [len(ls) for ls in links] == [3, 4, 3]  # self, first, [prev], [next]
    assert (
        links[0]["next_page"]
        == "https://api.getbase.com/v2/sequence_enrollments?page=2&per_page=25"
    )
    assert links[1]["prev_page"].endswith("page=1&per_page=25")


def test_without_links_the_pages_still_end_short(sell: Sell) -> None:
    """The default, as in the official fixture: `meta` has no `links` at all."""
    counts = [len(listing(sell, page=n, per_page=25)["items"]) for n in (1, 2, 3, 4)]
    assert counts == [25, 25, 10, 0]
    assert listing(sell, page=1)["meta"] == {"type": "collection", "count": 25}


def test_links_without_next_page(sell: Sell) -> None:
    sell.app.links, sell.app.next_page_links = True, False
    assert "next_page" not in listing(sell, page=1)["meta"]["links"]


@pytest.mark.parametrize("query", ["per_page=0", "per_page=101", "per_page=200", "per_page=x"])
@pytest.mark.parametrize("status", [400, 422])
def test_out_of_range_page_size_is_an_invalid_param(sell: Sell, query: str, status: int) -> None:
    sell.app.page_size_error_status = status
    resp = sell.client.get(f"{ENROLLMENTS}?{query}")
    assert resp.status_code == status
    error = first_error(resp)
    assert error["code"] == "invalid_param"
    assert error["details"] == f"'per_page' must be between 1 and 100, given: {query[9:]}"


@pytest.mark.parametrize("query", ["page=0", "page=-1", "ids=a", "resource_type=deal"])
def test_other_bad_parameters_are_400(sell: Sell, query: str) -> None:
    resp = sell.client.get(f"{ENROLLMENTS}?{query}")
    assert resp.status_code == 400
    assert first_error(resp)["code"] == "invalid_param"
    assert sell.client.get(f"{ENROLLMENTS}?sort_by=state:asc").status_code == 400


def test_filters_and_sorting(sell: Sell) -> None:
    all_ids = ids_of(listing(sell, per_page=100))
    contact = sell.world.enroll(sell.sequence, resource_type="contact", resource_id=42)
    assert ids_of(listing(sell, ids=f"{all_ids[3]},{all_ids[5]}")) == [all_ids[3], all_ids[5]]
    assert ids_of(listing(sell, resource_ids="42")) == [contact]
    assert ids_of(listing(sell, resource_type="contact")) == [contact]
    assert ids_of(listing(sell, sort_by="id:desc", per_page=2)) == [contact, all_ids[-1]]


def test_get_one_and_unknown_ones(sell: Sell) -> None:
    first = ids_of(listing(sell, per_page=1))[0]
    body = sell.client.get(f"{ENROLLMENTS}/{first}").json()
    assert body["meta"] == {"type": "sequence_enrollment"}
    assert body["data"]["id"] == first
    for path in (f"{ENROLLMENTS}/1", f"{ENROLLMENTS}/abc", "/v2/deals", "/v1/sequences"):
        resp = sell.client.get(path)
        assert resp.status_code == 404, path
        assert first_error(resp)["code"] == "not_found"


def test_put_stops_and_resumes_one_enrollment(sell: Sell) -> None:
    target = ids_of(listing(sell, per_page=1))[0]
    sell.world.block(target)
    assert sell.client.get(f"{ENROLLMENTS}/{target}").json()["data"]["state"] == "blocked"
    resumed = sell.client.put(f"{ENROLLMENTS}/{target}", json={"data": {"state": "active"}})
    assert resumed.json()["data"]["state"] == "active"
    stopped = sell.client.put(f"{ENROLLMENTS}/{target}", json={"data": {"state": "finished"}})
    data = stopped.json()["data"]
    assert (data["state"], data["finished_reason"]) == ("finished", "manual")
    assert data["finished_at"] == "2026-03-02T10:00:00Z"
    assert data["finished_actor_id"] == data["actor_id"]
    statuses = [s["data"]["action"]["data"]["status"] for s in data["enrollment_steps"]["items"]]
    assert statuses == ["cancelled"] * 3
    bad = sell.client.put(f"{ENROLLMENTS}/{target}", json={"data": {"state": "paused"}})
    assert bad.status_code == 422
    assert sell.client.put(f"{ENROLLMENTS}/{target}", content=b"{").status_code == 400
    assert sell.client.delete(f"{ENROLLMENTS}/{target}").status_code == 405


def test_mutations_show_in_the_listing(sell: Sell) -> None:
    a, b, c = ids_of(listing(sell, per_page=3))
    sell.world.advance_step(a, by=2)
    sell.world.finish(b, reason=None)
    sell.world.delete(c)
    rows = {item["data"]["id"]: item["data"] for item in listing(sell, per_page=3)["items"]}
    assert c not in rows
    assert rows[a]["previously_executed_step_position"] == 2
    assert (rows[b]["state"], rows[b]["finished_reason"], rows[b]["finished_actor_id"]) == (
        "finished",
        None,
        None,
    )


def test_record_shape_switches(sell: Sell) -> None:
    sell.world.previous_position = False
    sell.world.current_position = True
    sell.world.updated_at = True
    sell.world.sequence_names = False
    data = listing(sell, per_page=1)["items"][0]["data"]
    assert "previously_executed_step_position" not in data
    assert data["current_step_position"] == 0
    assert data["updated_at"] == "2026-03-02T10:00:00Z"
    assert "name" not in data["sequence"]["data"]


def test_sequences_listing_and_one(sell: Sell) -> None:
    other = sell.world.add_sequence("Webinar", steps=2)
    body = sell.client.get("/v2/sequences", params={"per_page": 100}).json()
    assert [i["data"]["name"] for i in body["items"]] == ["Q4 outbound", "Webinar"]
    assert [
        i["data"]["id"] for i in sell.client.get(f"/v2/sequences?ids={other}").json()["items"]
    ] == [other]
    one = sell.client.get(f"/v2/sequences/{other}").json()
    assert one["meta"] == {"type": "sequence"}
    assert [s["data"]["position"] for s in one["data"]["steps"]["items"]] == [0, 1]


def test_works_below_a_mount_prefix(sell: Sell) -> None:
    with FakeServer(Mount({"/sell": sell.app})) as mounted:
        resp = httpx.get(
            f"{mounted.base_url}/sell{ENROLLMENTS}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert resp.status_code == 200
    assert len(resp.json()["items"]) == 25


# -- faults -----------------------------------------------------------------------------------


def test_rate_limit_fault(sell: Sell) -> None:
    sell.faults.add("rate_limit", retry_after=3)
    resp = sell.client.get(ENROLLMENTS)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "3"
    assert first_error(resp)["code"] == "rate_limit_exceeded"
    sell.app.empty_429 = True
    sell.faults.add("rate_limit")
    resp = sell.client.get(ENROLLMENTS)
    assert (resp.status_code, resp.content, resp.headers.get("Retry-After")) == (429, b"", None)


def test_status_malformed_and_missing_field_faults(sell: Sell) -> None:
    sell.faults.add("status", status=503)
    resp = sell.client.get(ENROLLMENTS)
    assert resp.status_code == 503
    assert first_error(resp)["code"] == "temporarily_unavailable"
    sell.faults.add("malformed_json")
    resp = sell.client.get(ENROLLMENTS)
    assert resp.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        resp.json()
    sell.faults.add("missing_field")
    sell.faults.add("missing_field", field="state")
    assert "id" not in listing(sell)["items"][0]["data"]
    assert "state" not in listing(sell)["items"][0]["data"]


def test_timeout_and_reset_faults(sell: Sell) -> None:
    sell.faults.add("timeout", delay=2.0)
    with pytest.raises(httpx.ReadTimeout):
        sell.client.get(ENROLLMENTS, timeout=0.2)
    sell.faults.wake()
    sell.faults.add("reset")
    with pytest.raises(httpx.TransportError):
        sell.client.get(ENROLLMENTS)
    assert [kind for kind, _ in sell.faults.fired] == ["timeout", "reset"]


def test_pagination_faults(sell: Sell) -> None:
    sell.app.links = True  # only links can point back or claim more
    sell.faults.add("repeat_cursor")  # not on page 1: nothing to point back to
    page1 = listing(sell, page=1, per_page=10)
    assert sell.faults.pending() == 1
    page2 = listing(sell, page=2, per_page=10)
    assert ids_of(page2) == ids_of(page1)
    assert page2["meta"]["links"]["next_page"].endswith("page=2&per_page=10")
    sell.faults.add("empty_page")
    empty = listing(sell, page=2, per_page=10)
    assert empty["items"] == []
    assert empty["meta"]["links"]["next_page"].endswith("page=3&per_page=10")


def test_path_contains_scopes_a_fault(sell: Sell) -> None:
    sell.faults.add("status", status=500, path_contains="/v2/sequences")
    assert sell.client.get(ENROLLMENTS).status_code == 200
    assert sell.client.get(f"/v2/sequences/{sell.sequence}").status_code == 500
    assert sell.faults.pending() == 0


# -- the real source and normalizer against the fake -------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


def source_for(
    base_url: str,
    http: httpx.AsyncClient,
    *,
    page_size: int = 25,
    token: str = TOKEN,
    sequences: tuple[str, ...] = (),
) -> ZendeskSellSource:
    client = ProviderClient(
        source="sell",
        http=http,
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        limiter=PacingLimiter(per_second=10_000),
        max_attempts=2,
        describe_error=lambda doc: error_text(doc, secrets=(token,)),
    )
    return ZendeskSellSource(name="sell", client=client, sequences=sequences, page_size=page_size)


async def listed(source: ZendeskSellSource) -> list[Any]:
    return [normalize.normalize(r, page=p) async for p in source.pages() for r in p.records]


@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize(("count", "requests"), [(50, 3), (49, 2)])
async def test_source_lists_everything_with_or_without_links(
    sell: Sell, http: httpx.AsyncClient, links: bool, count: int, requests: int
) -> None:
    sell.app.links = links
    for eid in ids_of(listing(sell, per_page=100))[count:]:
        sell.world.delete(eid)
    sell.server.clear_requests()
    enrollments = await listed(source_for(sell.server.base_url, http))
    assert len({e.enrollment_id for e in enrollments}) == count
    # 50 is an exact multiple of 25: one more request finds the empty page that ends it, and
    # without links one more confirms that empty page.
    extra = 1 if count % 25 == 0 and not links else 0
    assert sell.server.count(ENROLLMENTS) == requests + extra


@pytest.mark.parametrize(
    ("previous", "current", "steps"),
    [
        (True, False, [3, 1]),
        (False, True, [3, 1]),
        (True, True, [3, 1]),
        (False, False, [None] * 2),
    ],
)
async def test_source_steps_with_either_position_field(
    sell: Sell, http: httpx.AsyncClient, previous: bool, current: bool, steps: list[int | None]
) -> None:
    sell.world.previous_position, sell.world.current_position = previous, current
    first = ids_of(listing(sell, per_page=1))[0]
    sell.world.advance_step(first, by=2)
    enrollments = await listed(source_for(sell.server.base_url, http))
    assert [e.state.step for e in enrollments[:2]] == steps


async def test_source_states_and_allow_list(sell: Sell, http: httpx.AsyncClient) -> None:
    other = sell.world.add_sequence("Webinar", steps=4)
    a, b = sell.world.enroll(other), sell.world.enroll(other)
    sell.world.block(a)
    sell.world.finish(b)
    got = {
        e.enrollment_id: e
        for e in await listed(source_for(sell.server.base_url, http, sequences=(str(other),)))
    }
    assert set(got) == {str(a), str(b)}
    assert (got[str(a)].state.status.value, got[str(a)].state.reason) == ("blocked", None)
    assert (got[str(b)].state.status.value, got[str(b)].state.reason) == ("finished", "manual")
    assert got[str(b)].sequence.name == "Webinar"
    assert got[str(b)].sequence.steps_total == 4  # the summary's steps_total
    assert got[str(b)].contact.email is None


async def test_source_looks_up_names_the_records_lack(sell: Sell, http: httpx.AsyncClient) -> None:
    sell.world.sequence_names = False
    enrollments = await listed(source_for(sell.server.base_url, http))
    assert {e.sequence.name for e in enrollments} == {"Q4 outbound"}
    assert sell.server.count("/v2/sequences") == 1


async def test_source_check_and_bad_token(sell: Sell, http: httpx.AsyncClient) -> None:
    await source_for(sell.server.base_url, http).check()
    with pytest.raises(SourceRejected) as info:
        await source_for(sell.server.base_url, http, token="wrong-token-999").check()
    assert str(info.value) == (
        "source 'sell': credentials check: authentication failed (HTTP 401): check api_key; "
        "provider said: unauthorized: Invalid or missing access token"
    )


async def test_source_refuses_an_empty_page_that_claims_more(
    sell: Sell, http: httpx.AsyncClient
) -> None:
    sell.app.links = True  # without links an empty page is the end (the fixture's case)
    sell.faults.add("empty_page", after=1)
    with pytest.raises(MalformedResponse, match=r"sequence enrollments page 2: .*'items' is empty"):
        await listed(source_for(sell.server.base_url, http))


async def test_demo_world_script_produces_one_event_per_change(http: httpx.AsyncClient) -> None:
    world = ZendeskSellWorld(clock=ManualClock(T0))
    demo_zendesk_sell.populate_zendesk_sell(world)
    changes = demo_zendesk_sell.script_zendesk_sell(world)
    assert 3 <= len(changes) <= 4
    with FakeServer(ZendeskSellApp(world, api_key=TOKEN)) as server:
        before = {e.enrollment_id: e.state for e in await listed(source_for(server.base_url, http))}
        for change in changes:
            change.apply()
        after = {e.enrollment_id: e.state for e in await listed(source_for(server.base_url, http))}
    events = sorted(
        (eid, event.value) for eid, state in after.items()
        for event in transitions(before.get(eid), state)
    )  # fmt: skip
    assert events == [
        ("5001", "enrollment.step_advanced"),
        ("5002", "enrollment.paused"),
        ("5003", "enrollment.finished"),
        ("5004", "enrollment.enrolled"),
    ]
    assert set(before) <= set(after)


async def test_without_links_a_spurious_empty_page_is_asked_again(
    sell: Sell, http: httpx.AsyncClient
) -> None:
    """The fixture's shape: no links. An empty page 2 that a second request fills is a glitch,
    not the end: the listing continues and is complete."""
    sell.faults.add("empty_page", after=1, path_contains=ENROLLMENTS)
    enrollments = await listed(source_for(sell.server.base_url, http, page_size=25))
    assert len({e.enrollment_id for e in enrollments}) == 60
    assert sell.server.count(ENROLLMENTS) == 4  # pages 1, 2 (empty), 2 again, 3 (short)
