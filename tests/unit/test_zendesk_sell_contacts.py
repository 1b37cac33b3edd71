"""ZendeskSellSource.contacts: batched lead/contact lookups against a respx-mocked Sell API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from worker.enrollment import Contact
from worker.sources.base import ContactLookup
from worker.sources.registry import SourceParams, build_source
from worker.sources.zendesk_sell import ZendeskSellSource

BASE = "https://api.getbase.com"
TOKEN = "sell-token-DO-NOT-LEAK-42"


class NoLimit:
    async def acquire(self) -> None:
        return None


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def source() -> AsyncIterator[ZendeskSellSource]:
    async with httpx.AsyncClient() as http:
        params = SourceParams(
            name="sell-eu",
            api_key=TOKEN,
            base_url=None,
            sequences=(),
            http=http,
            limiter=NoLimit(),
            sleep=no_sleep,
        )
        built = build_source("zendesk_sell", params)
        assert isinstance(built, ZendeskSellSource)
        yield built


def collection(*records: dict[str, Any]) -> dict[str, Any]:
    """Sell's envelope as in the vendor's fixtures (no links)."""
    items = [{"data": r, "meta": {"type": "lead"}} for r in records]
    return {"items": items, "meta": {"type": "collection", "count": len(items)}}


def ids_of(route: respx.Route) -> list[str]:
    return [call.request.url.params["ids"] for call in route.calls]


# The vendor's own fixture records (zendesk-sell-for-zapier multipleLeads / multipleContacts).
LEAD = {"id": 1, "creator_id": 1, "owner_id": 1, "first_name": "Mark", "last_name": "Johnson"}
LEAD |= {"organization_name": "Design Services Company", "email": "mark@design.example"}
CONTACT = {"id": 1, "creator_id": 1045095, "owner_id": 1293487, "name": "Kuba Tutaj"}
CONTACT |= {"is_organization": False, "contact_id": 77, "email": "kuba@base.example"}
ORG = {"id": 77, "name": "Base CRM", "is_organization": True}


def test_sell_source_offers_the_contact_lookup(source: ZendeskSellSource) -> None:
    assert isinstance(source, ContactLookup)


async def test_lead_and_contact_with_the_same_id_are_kept_apart(
    router: respx.MockRouter, source: ZendeskSellSource
) -> None:
    leads = router.get("/v2/leads").respond(json=collection(LEAD))
    contacts = router.get("/v2/contacts").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json=collection(CONTACT) if request.url.params["ids"] == "1" else collection(ORG),
        )
    )
    lead_ref, contact_ref = Contact(id="1", type="lead"), Contact(id="1", type="contact")
    got = await source.contacts([lead_ref, contact_ref])
    assert got[lead_ref] == Contact(
        id="1",
        type="lead",
        name="Mark Johnson",
        email="mark@design.example",
        company="Design Services Company",
    )
    assert got[contact_ref] == Contact(
        id="1", type="contact", name="Kuba Tutaj", email="kuba@base.example", company="Base CRM"
    )
    assert ids_of(leads) == ["1"]
    assert ids_of(contacts) == ["1", "77"]  # the person, then the organisation's name
    assert leads.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_batches_of_at_most_100_ids(
    router: respx.MockRouter, source: ZendeskSellSource
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["ids"].split(",")
        assert request.url.params["per_page"] == "100"
        return httpx.Response(200, json=collection(*({"id": int(i)} for i in ids)))

    leads = router.get("/v2/leads").mock(side_effect=answer)
    refs = [Contact(id=str(n), type="lead") for n in range(1, 251)]
    got = await source.contacts(refs)
    assert [len(i.split(",")) for i in ids_of(leads)] == [100, 100, 50]
    assert set(got) == set(refs)
    assert not router.get("/v2/contacts").called


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"id": 5, "first_name": "Ann"}, Contact(id="5", type="lead", name="Ann")),
        ({"id": 5, "last_name": "Lee", "email": ""}, Contact(id="5", type="lead", name="Lee")),
        (
            {"id": 5, "organization_name": "Acme", "first_name": None},
            Contact(id="5", type="lead", company="Acme"),
        ),
        ({"id": 5, "email": 7, "first_name": ["x"]}, Contact(id="5", type="lead")),
    ],
)
async def test_lead_fields(
    router: respx.MockRouter,
    source: ZendeskSellSource,
    record: dict[str, Any],
    expected: Contact,
) -> None:
    router.get("/v2/leads").respond(json=collection(record))
    ref = Contact(id="5", type="lead")
    assert (await source.contacts([ref]))[ref] == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"id": 9, "name": "Acme Corp", "is_organization": True, "email": "hi@acme.example"},
            Contact(
                id="9",
                type="contact",
                name="Acme Corp",
                email="hi@acme.example",
                company="Acme Corp",
            ),
        ),
        (
            {"id": 9, "first_name": "Jo", "last_name": "Wu", "is_organization": False},
            Contact(id="9", type="contact", name="Jo Wu"),
        ),
        (
            # An organisation name on the contact itself saves the organisation lookup.
            {"id": 9, "name": "Jo Wu", "organization_name": "Acme", "contact_id": 77},
            Contact(id="9", type="contact", name="Jo Wu", company="Acme"),
        ),
    ],
)
async def test_contact_fields(
    router: respx.MockRouter,
    source: ZendeskSellSource,
    record: dict[str, Any],
    expected: Contact,
) -> None:
    route = router.get("/v2/contacts").respond(json=collection(record))
    ref = Contact(id="9", type="contact")
    assert (await source.contacts([ref]))[ref] == expected
    assert route.call_count == 1


async def test_a_failed_lookup_is_logged_once_and_costs_only_the_labels(
    router: respx.MockRouter, source: ZendeskSellSource
) -> None:
    leads = router.get("/v2/leads").respond(503)
    router.get("/v2/contacts").respond(json=collection({"id": 2, "name": "Bo"}))
    with capture_logs() as logs:
        got = await source.contacts([Contact(id="1", type="lead"), Contact(id="2", type="contact")])
    assert leads.call_count == 1  # one attempt: the events are waiting
    assert list(got.values()) == [Contact(id="2", type="contact", name="Bo")]
    failures = [e for e in logs if e["event"] == "contact_lookup_failed"]
    assert len(failures) == 1
    assert "HTTP 503" in failures[0]["error"]
    assert TOKEN not in repr(logs)


@pytest.mark.parametrize("body", [{"items": "nope"}, ["x"], {"meta": {}}])
async def test_a_malformed_lookup_answer_labels_nothing(
    router: respx.MockRouter, source: ZendeskSellSource, body: Any
) -> None:
    router.get("/v2/leads").respond(json=body)
    with capture_logs() as logs:
        assert await source.contacts([Contact(id="1", type="lead")]) == {}
    assert [e["event"] for e in logs] == ["contact_lookup_failed"]


async def test_unknown_types_and_ids_are_not_asked_for(
    router: respx.MockRouter, source: ZendeskSellSource
) -> None:
    assert await source.contacts([Contact(id="1"), Contact(id="x1", type="lead")]) == {}
    assert not router.routes or not any(r.called for r in router.routes)
