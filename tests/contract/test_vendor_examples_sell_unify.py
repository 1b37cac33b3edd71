"""The vendors' own examples (Zendesk Sell, Unify) through the real client and normalizer.

Each file in vendor_examples/ is served as the vendor would serve it (respx), listed by the
provider's Source and normalized; the result is asserted field by field. Where the vendor's
material disagrees with itself (Unify's docs example lacks the spec's `status`; Sell's fixture
has no `meta.links` though other material shows them) both variants are run. The fakes are
checked against the same material: Unify's records against the spec's `Enrollment` schema,
Sell's listing against the fixture's shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.unify import UnifyApp, UnifyWorld
from worker.demo.fakes.zendesk_sell import ZendeskSellApp, ZendeskSellWorld
from worker.enrollment import Contact, Enrollment, SequenceRef, State, Status
from worker.errors import SourceRejected
from worker.normalize import NORMALIZERS
from worker.sources.base import Source
from worker.sources.registry import SourceParams, build_source

EXAMPLES = Path(__file__).parent / "vendor_examples"
SELL = "https://api.getbase.com"
UNIFY = "https://api.unifygtm.com"
KEY = "vendor-example-key-0123456789"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


class NoLimit:
    async def acquire(self) -> None:
        return None


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def source(provider: str, http: httpx.AsyncClient, base_url: str | None = None) -> Source:
    params = SourceParams(
        name=f"{provider}-vendor",
        api_key=KEY,
        base_url=base_url,
        sequences=(),
        http=http,
        limiter=NoLimit(),
        sleep=no_sleep,
    )
    return build_source(provider, params)


async def listed(provider: str, src: Source) -> list[Enrollment]:
    normalize = NORMALIZERS[provider]
    return [normalize(r, page=p) async for p in src.pages() for r in p.records]


# ------------------------------------------------------------------------------ Zendesk Sell


def sell_expected(name: str | None = "My sequence name") -> list[Enrollment]:
    """What the fixture's two enrollments (one lead, stopped by hand twice) normalize to."""
    return [
        Enrollment(
            enrollment_id=str(eid),
            sequence=SequenceRef(id="21124", name=name, steps_total=3),  # the summary's
            contact=Contact(id="1988695232", type="lead"),
            state=State(
                status=Status.FINISHED,
                raw_status="finished",
                step=2,  # previously_executed_step_position 1, 0-based
                reason="manual",
            ),
        )
        for eid in (92593, 92594)
    ]


@pytest.mark.parametrize("links", [False, True])
async def test_sell_enrollments_fixture(
    router: respx.MockRouter, http: httpx.AsyncClient, links: bool
) -> None:
    body = example("zendesk_sell.enrollments.fixture.json")
    if links:  # what README §1.9 shows: links, and no next_page on the last page
        body["meta"]["links"] = {"self": f"{SELL}/v2/sequence_enrollments?page=1&per_page=100"}
    route = router.get(f"{SELL}/v2/sequence_enrollments").respond(json=body)
    got = await listed("zendesk_sell", source("zendesk_sell", http))
    assert got == sell_expected()
    assert route.call_count == 1  # a short page ends the listing
    assert dict(route.calls[0].request.url.params) == {
        "page": "1",
        "per_page": "100",
        "sort_by": "id:asc",
    }
    assert route.calls[0].request.headers["authorization"] == f"Bearer {KEY}"


async def test_sell_fixture_without_sequence_names_uses_the_sequences_fixture(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    body = example("zendesk_sell.enrollments.fixture.json")
    for item in body["items"]:
        del item["data"]["sequence"]["data"]["name"]
    router.get(f"{SELL}/v2/sequence_enrollments").respond(json=body)
    router.get(f"{SELL}/v2/sequences").respond(json=example("zendesk_sell.sequences.fixture.json"))
    got = await listed("zendesk_sell", source("zendesk_sell", http))
    assert got == sell_expected(name="Another test sequence")  # the sequences fixture's 21124


async def test_sell_error_fixture(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    router.get(f"{SELL}/v2/sequence_enrollments").respond(
        400, json=example("zendesk_sell.errorResponse.fixture.json")
    )
    with pytest.raises(SourceRejected) as info:
        await listed("zendesk_sell", source("zendesk_sell", http))
    assert str(info.value) == (
        "source 'zendesk_sell-vendor': sequence enrollments page 1: request rejected (HTTP 400); "
        "provider said: invalid_param: invalid request query parameter (The request query "
        "parameter 'per_page' is malformed, missing, or has an invalid value (must be between "
        "1 and 100, given: 200))"
    )


def shape(value: Any) -> Any:
    """Keys (recursively) and JSON types: what a record looks like, not what it says."""
    if isinstance(value, Mapping):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "null" if value is None else type(value).__name__


def test_sell_fake_serves_the_fixture_shape() -> None:
    world = ZendeskSellWorld(previous_position=True)
    sequence = world.add_sequence("My sequence name", sequence_id=21124)
    world.finish(world.enroll(sequence), reason="manual")
    with FakeServer(ZendeskSellApp(world, api_key=KEY)) as server:
        served = httpx.get(
            f"{server.base_url}/v2/sequence_enrollments",
            headers={"Authorization": f"Bearer {KEY}", "User-Agent": "test"},
        ).json()
    fixture = example("zendesk_sell.enrollments.fixture.json")
    assert served["meta"] == {"type": "collection", "count": 1}  # no links, like the fixture
    got, want = shape(served["items"][0]), shape(fixture["items"][0])
    step = got["data"]["enrollment_steps"]["items"][0]["data"]
    assert step.pop("overdue") == "bool"  # documented on the step, absent from the fixture
    # The fixture's stopped steps are "cancelled", executed_at a string: the fake's match.
    got["data"]["enrollment_steps"]["items"] = want["data"]["enrollment_steps"]["items"]
    assert got == want


# ------------------------------------------------------------------------------------ Unify

SPEC = example("unify.sequences.openapi.json")
SCHEMAS: Mapping[str, Any] = SPEC["components"]["schemas"]


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema with its $ref followed and its allOf parts merged (the spec's two idioms)."""
    if "$ref" in schema:
        return resolve(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]])
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf", ()):
        part = resolve(part)
        if "properties" in part:
            merged["properties"] = {**part["properties"], **merged.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
        for key in ("type", "format", "enum"):
            if key in part:
                merged.setdefault(key, part[key])
    return merged


def instance(schema: Mapping[str, Any], *, name: str = "") -> Any:
    """A value for every required property, as the spec types it."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: instance(props[k], name=k) for k in schema.get("required", [])}
    if kind == "array":
        return [instance(schema["items"], name=name)]
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time" or name.endswith("_at"):
        return "2023-11-07T05:31:56Z"
    if schema.get("format") == "uuid" or name == "id":
        return "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    return f"<{name}>"


def problems(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Where `value` breaks the schema's required keys and types (no more is needed here)."""
    schema = resolve(schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where or '.'} is null"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where} not in {schema['enum']}")
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where} is not an object"]
        found += [f"{where}.{k} missing" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += problems(value[key], sub, f"{where}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        for i, item in enumerate(value):
            found += problems(item, schema["items"], f"{where}[{i}]")
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"{where} is not a boolean")
    elif kind == "string" and not isinstance(value, str):
        found.append(f"{where} is not a string")
    return found


ENROLLMENT = {"$ref": "#/components/schemas/Enrollment"}


def unify_listing(router: respx.MockRouter, *records: Any) -> respx.Route:
    """Page 1 holds the records and a cursor (like the docs example); the cursor's page ends."""

    def answer(request: httpx.Request) -> httpx.Response:
        if "cursor" in request.url.params:
            return httpx.Response(200, json={"enrollments": [], "next_cursor": None})
        return httpx.Response(200, json={"enrollments": list(records), "next_cursor": "<string>"})

    return router.get(f"{UNIFY}/sequences/v1/enrollments").mock(side_effect=answer)


async def test_unify_docs_example(router: respx.MockRouter, http: httpx.AsyncClient) -> None:
    doc = example("unify.list-enrollments.doc-example.json")
    route = unify_listing(router, *doc["enrollments"])
    [got] = await listed("unify", source("unify", http))
    assert got == Enrollment(
        enrollment_id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
        sequence=SequenceRef(id="3c90c3cc-0d44-4b50-8888-8dd25736052a", name="<string>"),
        contact=Contact(
            id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
            email="jsmith@example.com",
            name="<string> <string>",
        ),
        # No `status`: ended_at says FINISHED; is_canceled/is_excluded make it removed.
        state=State(
            status=Status.REMOVED,
            raw_status="FINISHED",
            replied=True,  # classifications with `id` only: no sign of an auto-reply
            bounced=True,
            opted_out=True,
        ),
        updated_at="2023-11-07T05:31:56Z",
    )
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"limit": "100"},
        {"limit": "100", "cursor": "<string>"},
    ]
    assert route.calls[0].request.headers["x-api-key"] == KEY
    # The docs example disagrees with the spec exactly where we tolerate it.
    assert (
        sorted(problems(doc["enrollments"][0], ENROLLMENT))
        == [
            ". missing",
            ".enrolled_by_play missing",
            ".reply_email_message.classifications[0].category missing",
            ".status missing",
        ][1:]
    )


@pytest.mark.parametrize(
    ("changes", "status", "replied", "reason"),
    [
        ({}, Status.ACTIVE, False, None),  # a reply message is there, but no reply
        ({"status": "IN_PROGRESS"}, Status.ACTIVE, False, None),
        ({"status": "IN_PROGRESS", "sequence.is_paused": True}, Status.PAUSED, False, None),
        ({"status": "IN_PROGRESS", "mailbox.is_paused": True}, Status.PAUSED, False, None),
        ({"status": "IN_PROGRESS", "mailbox.is_unauthorized": True}, Status.BLOCKED, False, None),
        ({"status": "IN_PROGRESS", "is_replied": True}, Status.ACTIVE, False, "auto_reply"),
        (
            {"status": "IN_PROGRESS", "is_replied": True, "category": "POSITIVE"},
            Status.ACTIVE,
            True,
            None,
        ),
        ({"status": "FINISHED", "is_replied": True}, Status.FINISHED, False, "auto_reply"),
    ],
)
async def test_unify_spec_enrollment_schema(
    router: respx.MockRouter,
    http: httpx.AsyncClient,
    changes: dict[str, Any],
    status: Status,
    replied: bool,
    reason: str | None,
) -> None:
    """A record built from the spec's `Enrollment` schema (every required field, first enum
    values: DRAFT status, AUTOMATED classification) through the client and normalizer."""
    record = instance(ENROLLMENT)
    assert problems(record, ENROLLMENT) == []
    changes = dict(changes)
    record["status"] = changes.pop("status", "IN_PROGRESS" if not changes else record["status"])
    category = changes.pop("category", None)
    if category:
        record["reply_email_message"]["classifications"][0]["category"] = category
    for path, value in changes.items():
        obj, _, key = path.rpartition(".")
        (record[obj] if obj else record)[key] = value
    unify_listing(router, record)
    [got] = await listed("unify", source("unify", http))
    assert got.state == State(
        status=status,
        raw_status=record["status"],
        replied=replied,
        bounced=False,
        opted_out=False,
        reason=reason,
    )
    assert got.contact == Contact(
        id=record["person"]["id"], email="<email>", name="<first_name> <last_name>"
    )
    assert got.updated_at == "2023-11-07T05:31:56Z"


async def test_unify_spec_draft_is_pending(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    record = instance(ENROLLMENT)
    assert record["status"] == "DRAFT"
    unify_listing(router, record)
    [got] = await listed("unify", source("unify", http))
    assert got.state.status is Status.PENDING


@pytest.mark.parametrize("with_status", [True, False])
def test_unify_fake_records_match_the_spec(with_status: bool) -> None:
    world = UnifyWorld(include_status=with_status, include_enrolled_by_play=with_status)
    sequence = world.add_sequence("Q4")
    one = world.enroll(sequence, email="a@example.com", first_name="A", play_name="Visitors")
    world.update(one, is_replied=True, reply_category="AUTOMATED")
    world.enroll(sequence, email="b@example.com", status="DRAFT")
    world.pause_sequence(sequence)
    world.set_mailbox("rep@seller.example", is_unauthorized=True)
    with FakeServer(UnifyApp(world, api_key=KEY)) as server:
        body = httpx.get(
            f"{server.base_url}/sequences/v1/enrollments", headers={"x-api-key": KEY}
        ).json()
    assert problems(body, {"$ref": "#/components/schemas/ListEnrollmentsResponse"}) == (
        []
        if with_status
        else [
            f".enrollments[{i}].{k} missing" for i in (0, 1) for k in ("enrolled_by_play", "status")
        ]
    )
    first = body["enrollments"][0]
    assert first["sequence"]["is_paused"] is True
    assert first["mailbox"]["is_unauthorized"] is True
    assert first["reply_email_message"]["classifications"][0]["category"] == "AUTOMATED"
