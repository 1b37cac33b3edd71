"""The vendors' own examples (tests/contract/vendor_examples) served verbatim over real local
HTTP to the real clients and normalizers of Reply.io (v3, v4, v3 extended state) and Whippy.
The assertions are what SPEC §5 says each example means."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.demo.fakes.server import FakeServer, Request, Response
from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.normalize import NORMALIZERS
from worker.sources import replyio, whippy
from worker.sources.base import RawPage
from worker.sources.http import ProviderClient
from worker.sources.limiter import PacingLimiter
from worker.sources.paging import OffsetPager

EXAMPLES = Path(__file__).parent / "vendor_examples"
KEY = "vendor-example-key-42"


def example(name: str) -> dict[str, Any]:
    doc = json.loads((EXAMPLES / name).read_text())
    doc.pop("_source")  # our note of where it came from, not part of the vendor's body
    return dict(doc)


class Served:
    """Answers GET path (+ sorted query, minus paging) with fixed bodies, by offset."""

    def __init__(self, routes: Mapping[str, Any], *, offset_param: str) -> None:
        self.routes = routes
        self.offset_param = offset_param
        self.seen: list[Request] = []

    def handle(self, request: Request) -> Response:
        self.seen.append(request)
        filters = sorted(
            (k, v[-1])
            for k, v in request.query.items()
            if k not in ("top", "skip", "limit", "offset", "sort_by", "sort_direction")
        )
        key = request.path + "".join(f"&{k}={v}" for k, v in filters)
        offset = int(request.param(self.offset_param) or 0)
        pages = self.routes.get(key)
        if pages is None or offset not in pages:
            return Response.json({"title": "Not Found"}, status=404)
        return Response.json(pages[offset])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def client(base_url: str, http: httpx.AsyncClient, headers: dict[str, str]) -> ProviderClient:
    return ProviderClient(
        source="vendor",
        http=http,
        base_url=base_url,
        headers=headers,
        limiter=PacingLimiter(per_second=10_000),
        max_attempts=1,
    )


async def normalized(provider: str, pages: AsyncIterator[RawPage]) -> list[Enrollment]:
    return [NORMALIZERS[provider](r, page=page) async for page in pages for r in page.records]


# -- Reply.io ------------------------------------------------------------------------------

SEQUENCES = {"items": [{"id": 100, "name": "Example", "isArchived": False}], "hasMore": False}
JOHN = Contact(
    id="12345", email="john.doe@company.com", name="John Doe", company="Tech Solutions Inc"
)


def reply_routes(version: str, body: dict[str, Any]) -> dict[str, Any]:
    # The examples say hasMore: true, so the client asks for the next page: it is empty.
    return {
        f"/{version}/sequences": {0: SEQUENCES},
        f"/{version}/sequences/100/contacts": {0: body, 1: {"items": [], "hasMore": False}},
    }


async def reply_listing(
    version: str, body: dict[str, Any], http: httpx.AsyncClient
) -> tuple[list[Enrollment], Served]:
    app = Served(reply_routes(version, body), offset_param="skip")
    with FakeServer(app) as server:
        source = replyio.ReplyioSource(
            name="vendor",
            client=client(server.base_url, http, replyio.auth_headers(KEY)),
            sequences=(),
        )
        return await normalized("replyio", source.pages()), app


async def test_reply_v3_list_contacts_example(http: httpx.AsyncClient) -> None:
    [john], app = await reply_listing(
        "v3", example("replyio.v3.list-contacts.doc-example.json"), http
    )
    assert john.enrollment_id == "100:12345"
    assert john.sequence == SequenceRef(id="100", name="Example")
    assert john.contact == JOHN
    assert john.state == State(
        status=Status.ACTIVE,
        raw_status="active",
        step=2,
        step_id="5421",
        replied=False,
        bounced=False,
        opted_out=False,
    )
    # Detected as v3 (the first probe answered), listed oldest first.
    assert [r.path for r in app.seen][:2] == ["/v3/sequences", "/v3/sequences"]
    contacts = [r for r in app.seen if r.path.endswith("/contacts")]
    assert {(r.param("sort_by"), r.param("sort_direction")) for r in contacts} == {
        ("addingDate", "asc")
    }


async def test_reply_v4_list_contacts_example_on_a_v4_only_account(
    http: httpx.AsyncClient,
) -> None:
    [john], app = await reply_listing(
        "v4", example("replyio.v4.list-contacts.doc-example.json"), http
    )
    assert john.enrollment_id == "100:12345"
    assert john.contact == JOHN
    assert john.state == State(
        status=Status.ACTIVE, raw_status="Active", step=2, step_id=None, opted_out=False
    )
    assert [r.path for r in app.seen][:2] == ["/v3/sequences", "/v4/sequences"]  # v3: 404


@pytest.mark.parametrize("wrapped", [False, True], ids=["hasMore", "info.hasMore"])
async def test_reply_v3_extended_state_example(http: httpx.AsyncClient, wrapped: bool) -> None:
    body = example("replyio.v3.extended-state.doc-example.json")
    if wrapped:  # older snapshots of the same page wrap paging in `info`
        body = {"items": body["items"], "info": {"hasMore": body["hasMore"]}}
    path = "/v3/sequences/100/contacts/extended"
    app = Served({path: {0: body, 1: {"items": [], "hasMore": False}}}, offset_param="skip")
    sequence = SequenceRef(id="100", name="Example")
    with FakeServer(app) as server:
        pager = OffsetPager(
            client(server.base_url, http, replyio.auth_headers(KEY)),
            replyio.PAGING,
            source="vendor",
            page_size=100,
        )
        pages = [
            RawPage(records=items, where=where, sequence=sequence)
            async for items, where in pager.pages(path, label="extended")
        ]
    [john] = [NORMALIZERS["replyio"](r, page=p) for p in pages for r in p.records]
    assert john.enrollment_id == "100:150467348"
    assert john.contact == Contact(id="150467348", email="john.doe@example.com", name="John Doe")
    assert john.state == State(
        status=Status.ACTIVE,
        raw_status="Active",
        step=1,
        step_id="11111111",
        replied=False,
        bounced=False,
        opted_out=None,  # not in the extended record
    )


# -- Whippy --------------------------------------------------------------------------------

SAMPLES = "whippy.webhook-samples.json"


def whippy_routes(row: dict[str, Any], *, responded: bool) -> dict[str, Any]:
    samples = example(SAMPLES)
    sequence = samples["sequence_updated"]
    listed = {k: v for k, v in sequence.items() if k != "steps"}
    base = f"/v1/sequences/{sequence['id']}"
    return {
        "/v1/sequences": {0: {"data": [listed], "total": 1}},
        base: {0: {"data": sequence}},
        f"{base}/contacts": {0: {"data": [row], "total": 1}},
        f"{base}/contacts&responded=true": {
            0: {"data": [row] if responded else [], "total": 1 if responded else 0}
        },
    }


async def whippy_listing(
    row: dict[str, Any], http: httpx.AsyncClient, *, responded: bool
) -> tuple[list[Enrollment], Served]:
    app = Served(whippy_routes(row, responded=responded), offset_param="offset")
    with FakeServer(app) as server:
        source = whippy.WhippySource(
            name="vendor",
            client=client(server.base_url, http, {whippy.AUTH_HEADER: KEY}),
            sequences=(),
        )
        return await normalized("whippy", source.pages()), app


@pytest.mark.parametrize("responded", [False, True])
async def test_whippy_step_contact_updated_sample(http: httpx.AsyncClient, responded: bool) -> None:
    samples = example(SAMPLES)
    row = samples["step_contact_updated"]
    [giovanni], app = await whippy_listing(copy.deepcopy(row), http, responded=responded)
    assert giovanni.enrollment_id == f"{row['sequence_id']}:{row['contact']['id']}"
    # The sample sequence's one step (position 0) is the whole sequence: steps_total 1.
    assert giovanni.sequence == SequenceRef(id=row["sequence_id"], name="Sequence", steps_total=1)
    # email "" is null; the E.164 phone is kept.
    assert giovanni.contact == Contact(
        id=row["contact"]["id"], email=None, name="Giovanni Torp", phone="+13603094336"
    )
    assert giovanni.state == State(
        status=Status.FINISHED,
        raw_status="finished",
        step=1,
        step_id=row["step_id"],
        replied=responded,  # only the documented `responded=true` filter says so
        bounced=None,
        opted_out=False,
    )
    filtered = [r for r in app.seen if r.param("responded") is not None]
    assert [r.param("responded") for r in filtered] == ["true"]


async def test_whippy_step_contact_created_sample(http: httpx.AsyncClient) -> None:
    row = example(SAMPLES)["step_contact_created"]
    [giovanni], _ = await whippy_listing(copy.deepcopy(row), http, responded=False)
    assert giovanni.contact.email is None
    assert giovanni.contact.phone == "+13603094336"
    assert (giovanni.state.status, giovanni.state.step, giovanni.state.replied) == (
        Status.ACTIVE,
        1,
        False,
    )
