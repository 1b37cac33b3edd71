"""Zendesk Sell events carry the lead's or contact's fields: real pipeline, fake Sell, Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from worker.delivery.outbox import Outbox, Route
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.zendesk_sell import ZendeskSellApp, ZendeskSellWorld
from worker.detect.contacts import CACHE_TTL_S
from worker.detect.pipeline import PollResult, SourceRuntime, poll_source
from worker.normalize import NORMALIZERS
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.zendesk_sell import ZendeskSellSource
from worker.store import keys

TOKEN = "sell-token-0123456789"
SOURCE = "sell-eu"
SINK = "sink"
ROUTES = (Route(destination=SINK, events=("*",), sources=()),)


class Sell:
    def __init__(self) -> None:
        self.world = ZendeskSellWorld()
        self.app = ZendeskSellApp(self.world, api_key=TOKEN)
        self.server = FakeServer(self.app)
        self.sequence = self.world.add_sequence("Q4 outbound")


@pytest.fixture
def sell() -> Iterator[Sell]:
    s = Sell()
    s.server.start()
    yield s
    s.server.stop()


@pytest.fixture
async def runtime(sell: Sell) -> AsyncIterator[SourceRuntime]:
    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient(timeout=2.0) as http:
        client = ProviderClient(
            source=SOURCE,
            http=http,
            base_url=sell.server.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            limiter=PacingLimiter(per_second=10_000),
            sleep=no_sleep,
        )
        source = ZendeskSellSource(name=SOURCE, client=client, sequences=())
        yield SourceRuntime(
            name=SOURCE,
            provider="zendesk_sell",
            source=source,
            normalize=NORMALIZERS["zendesk_sell"],
        )


async def poll(store: Redis, runtime: SourceRuntime) -> PollResult:
    return await poll_source(store, runtime, routes=ROUTES, now=lambda: datetime.now(UTC))


async def drain(store: Redis) -> list[dict[str, Any]]:
    outbox = Outbox(store, source=SOURCE, destination=SINK)
    due = await outbox.due_now(now_ms=2**52, limit=10_000)
    await outbox.ack([event_id for event_id, _ in due])
    return [orjson.loads(body) for _, body in due if body is not None]


def contacts(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["data"]["enrollment_id"], e["type"]): e["data"]["contact"] for e in events}


async def test_events_name_the_lead_or_contact(
    store: Redis, sell: Sell, runtime: SourceRuntime
) -> None:
    world = sell.world
    shared_id = world.add_lead(
        first_name="Mark",
        last_name="Johnson",
        email="mark@design.example",
        organization_name="Design Services Company",
    )
    first = world.enroll(sell.sequence, resource_id=shared_id)
    await poll(store, runtime)  # the silent baseline looks nothing up
    assert await drain(store) == []
    assert sell.server.count("/v2/leads") == 0

    org = world.add_contact(name="Base CRM", is_organization=True)
    world.add_contact(
        first_name="Kuba",
        last_name="Tutaj",
        email="kuba@base.example",
        organization_id=org,
        contact_id=shared_id,  # the same id as the lead: must not be confused
    )
    as_contact = world.enroll(sell.sequence, resource_id=shared_id, resource_type="contact")
    world.advance_step(first)
    await poll(store, runtime)
    got = contacts(await drain(store))
    assert got == {
        (str(first), "enrollment.step_advanced"): {
            "id": str(shared_id),
            "type": "lead",
            "name": "Mark Johnson",
            "email": "mark@design.example",
            "company": "Design Services Company",
        },
        (str(as_contact), "enrollment.enrolled"): {
            "id": str(shared_id),
            "type": "contact",
            "name": "Kuba Tutaj",
            "email": "kuba@base.example",
            "company": "Base CRM",
        },
    }
    # One batched request per type, plus one for the person's organisation.
    assert sell.server.count("/v2/leads") == 1
    assert sell.server.count("/v2/contacts") == 2
    lead_key = keys.contact(SOURCE, "lead", str(shared_id))
    assert 0 < await store.ttl(lead_key) <= CACHE_TTL_S

    # Cached: the next change of either costs no lookup.
    world.finish(first)
    world.block(as_contact)
    await poll(store, runtime)
    again = contacts(await drain(store))
    assert again[(str(first), "enrollment.finished")]["name"] == "Mark Johnson"
    assert again[(str(as_contact), "enrollment.paused")]["name"] == "Kuba Tutaj"
    assert sell.server.count("/v2/leads") == 1
    assert sell.server.count("/v2/contacts") == 2


async def test_a_failed_lookup_sends_the_event_with_nulls(
    store: Redis, sell: Sell, runtime: SourceRuntime
) -> None:
    world = sell.world
    world.enroll(sell.sequence)
    await poll(store, runtime)
    sell.app.people_unavailable = True
    added = world.enroll(sell.sequence)
    with capture_logs() as logs:
        result = await poll(store, runtime)
    assert result.events == 1
    [event] = await drain(store)
    assert event["type"] == "enrollment.enrolled"
    assert event["data"]["contact"] == {
        "id": event["data"]["contact"]["id"],
        "type": "lead",
        "name": None,
        "email": None,
        "company": None,
    }
    assert [e["event"] for e in logs if "contact" in e["event"]] == [
        "contact_lookup_failed",
        "contacts_unknown",
    ]
    assert TOKEN not in repr(logs)
    assert sell.server.count("/v2/leads") == 1  # tried once, not five times

    # Nothing unknown was cached: once the API answers, the next event is labelled.
    sell.app.people_unavailable = False
    world.advance_step(added)
    await poll(store, runtime)
    [later] = await drain(store)
    assert later["data"]["contact"]["email"].endswith("@lead.example")


async def test_a_deleted_lead_leaves_the_fields_null(
    store: Redis, sell: Sell, runtime: SourceRuntime
) -> None:
    world = sell.world
    await poll(store, runtime)
    added = world.enroll(sell.sequence)
    lead_id = int(world.enrollment(added)["resource_id"])  # type: ignore[index]
    world.delete_person("lead", lead_id)
    await poll(store, runtime)
    [event] = await drain(store)
    assert event["data"]["contact"]["id"] == str(lead_id)
    assert event["data"]["contact"]["name"] is None


class BrokenLookup(ZendeskSellSource):
    async def contacts(self, wanted: Any) -> Any:
        raise RuntimeError("bug in a lookup")


async def test_a_crashing_lookup_still_commits_the_events(
    store: Redis, sell: Sell, runtime: SourceRuntime
) -> None:
    broken = BrokenLookup(name=SOURCE, client=runtime.source._client, sequences=())  # type: ignore[attr-defined]
    rt = SourceRuntime(
        name=SOURCE, provider="zendesk_sell", source=broken, normalize=runtime.normalize
    )
    await poll(store, rt)
    sell.world.enroll(sell.sequence)
    with capture_logs() as logs:
        assert (await poll(store, rt)).events == 1
    assert [e["contact"]["name"] for e in (x["data"] for x in await drain(store))] == [None]
    assert any(e["event"] == "contact_lookup_failed" for e in logs)


async def test_an_absence_removal_keeps_the_contact_type(
    store: Redis, sell: Sell, runtime: SourceRuntime
) -> None:
    world = sell.world
    lead = world.enroll(sell.sequence)
    contact = world.enroll(sell.sequence, resource_type="contact")
    world.enroll(sell.sequence)  # stays: an empty listing would be held as suspect (SPEC §5)
    await poll(store, runtime)
    world.delete(lead)
    world.delete(contact)
    await poll(store, runtime)  # absent once: marked
    await poll(store, runtime)  # absent twice: removed
    events = await drain(store)
    assert sorted((e["type"], e["data"]["contact"]["type"]) for e in events) == [
        ("enrollment.removed", "contact"),
        ("enrollment.removed", "lead"),
    ]
