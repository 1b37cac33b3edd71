"""The fake Whippy API over real local HTTP, and the real WhippySource against its variants."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract import provider_whippy, providers
from worker.demo import whippy as demo_whippy
from worker.demo.fakes.faults import FaultKind, FaultPlan
from worker.demo.fakes.server import FakeServer
from worker.demo.fakes.unify import ManualClock
from worker.demo.fakes.whippy import RETRY_MS_HEADER, StepStatus, WhippyApp, WhippyWorld
from worker.enrollment import Enrollment, State, Status
from worker.normalize import whippy as normalize_whippy
from worker.normalize.fields import UnreadableId
from worker.sources.limiter import PacingLimiter
from worker.sources.registry import SourceParams, build_source

KEY = "whippy-test-key-123"
VENDOR = Path(__file__).resolve().parents[1] / "contract" / "vendor_examples"
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
ROW_FIELDS = {
    "id", "status", "contact", "step_id", "sequence_id", "channel_id", "added_by_id",
    "scheduled_at", "clicked_link", "unsubscribed", "created_at", "updated_at",
    "run_created_at", "run_updated_at", "contact_messages",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fake:
    client: httpx.Client
    world: WhippyWorld
    app: WhippyApp
    faults: FaultPlan
    server: FakeServer
    clock: ManualClock
    sequence: str


@pytest.fixture
def fake() -> Iterator[Fake]:
    clock = ManualClock(T0)
    world = WhippyWorld(clock=clock, seed=3)
    sequence = world.add_sequence("Q4 outreach", steps=3)
    for n in range(30):  # steps 1, 2, 3 in turn: 60 rows
        world.add_contact(sequence, name=f"P {n}", email=f"p{n}@acme.io", step=n % 3 + 1)
    faults = FaultPlan()
    app = WhippyApp(world, api_key=KEY, faults=faults)
    with FakeServer(app) as server:
        headers = {"X-WHIPPY-KEY": KEY}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=5) as client:
            yield Fake(client, world, app, faults, server, clock, sequence)
        faults.wake()


def contacts(fake: Fake, **params: Any) -> httpx.Response:
    return fake.client.get(f"/v1/sequences/{fake.sequence}/contacts", params=params)


# -- the fake API ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-WHIPPY-KEY": "wrong"}, {"Authorization": KEY}])
def test_bad_credentials_get_the_error_envelope(fake: Fake, headers: dict[str, str]) -> None:
    resp = httpx.get(f"{fake.server.base_url}/v1/sequences", headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"errors": [{"description": "Not authenticated"}], "status": 401}


def test_key_header_name_is_case_insensitive(fake: Fake) -> None:
    resp = httpx.get(f"{fake.server.base_url}/v1/sequences", headers={"x-whippy-key": KEY})
    assert resp.status_code == 200


def test_sequences_list_and_detail_shapes(fake: Fake) -> None:
    body = fake.client.get("/v1/sequences").json()
    assert body["total"] == 1
    assert [s["title"] for s in body["data"]] == ["Q4 outreach"]
    assert "steps" not in body["data"][0]
    detail = fake.client.get(f"/v1/sequences/{fake.sequence}").json()["data"]
    assert [(s["position"], s["title"]) for s in detail["steps"]] == [
        (0, "Step 1"),
        (1, "Step 2"),
        (2, "Step 3"),
    ]
    missing = fake.client.get("/v1/sequences/nope")
    assert missing.status_code == 404
    assert missing.json()["errors"] == [{"description": "Sequence not found"}]
    assert fake.client.get("/v1/sequences/nope/contacts").status_code == 404


def test_contacts_page_by_limit_and_offset_with_total(fake: Fake) -> None:
    default = contacts(fake).json()
    assert (len(default["data"]), default["total"]) == (50, 60)  # documented default limit
    seen = [r["id"] for r in contacts(fake, limit=25, offset=0).json()["data"]]
    seen += [r["id"] for r in contacts(fake, limit=25, offset=25).json()["data"]]
    seen += [r["id"] for r in contacts(fake, limit=25, offset=50).json()["data"]]
    assert seen == [r["id"] for r in fake.world.rows(fake.sequence)]
    assert len(set(seen)) == 60
    assert contacts(fake, limit=500, offset=60).json() == {"data": [], "total": 60}


@pytest.mark.parametrize(
    "query", [{"limit": 501}, {"limit": 0}, {"limit": "x"}, {"offset": -1}, {"status": "done"}]
)
def test_out_of_range_parameters_are_422(fake: Fake, query: dict[str, Any]) -> None:
    resp = contacts(fake, **query)
    assert resp.status_code == 422
    body = resp.json()
    assert body["status"] == 422
    assert body["errors"][0]["description"]


def test_limit_variants_cap_or_clamp(fake: Fake) -> None:
    fake.app.max_limit = 20
    assert contacts(fake, limit=21).status_code == 422
    fake.app.clamp_limit = True
    clamped = contacts(fake, limit=500).json()
    assert (len(clamped["data"]), clamped["total"]) == (20, 60)


def test_rows_have_the_vendor_sample_fields_and_nothing_invented(fake: Fake) -> None:
    samples = json.loads((VENDOR / "whippy.webhook-samples.json").read_text())
    first = contacts(fake, limit=1).json()["data"][0]
    assert set(first) == ROW_FIELDS == set(samples["step_contact_created"])
    assert "responded" not in first  # in no vendor sample: only the filter knows replies
    assert set(first["contact"]) == {"id", "name", "email", "phone"}
    assert first["status"] == "active"
    fake.world.include_total = False
    body = contacts(fake, limit=1).json()
    assert set(body) == {"data"}
    assert set(body["data"][0]) == ROW_FIELDS


def test_world_rows_follow_mutations(fake: Fake) -> None:
    contact = fake.world.add_contact(fake.sequence, name="New", step=2)
    rows = [r for r in fake.world.rows(fake.sequence) if r["contact"]["id"] == contact]
    assert [r["status"] for r in rows] == ["complete", "active"]
    fake.clock.advance(5)
    fake.world.advance(fake.sequence, contact)
    newest = fake.world.newest(fake.sequence, contact)
    assert (newest["status"], newest["updated_at"]) == ("active", "2026-03-02T10:00:05Z")
    fake.world.unsubscribe(fake.sequence, contact)
    fake.world.respond(fake.sequence, contact)
    assert fake.world.newest(fake.sequence, contact)["unsubscribed"] is True
    responded = contacts(fake, responded="true").json()["data"]
    assert {r["contact"]["id"] for r in responded} == {contact}
    steps = [r["status"] for r in fake.world.rows(fake.sequence) if r["contact"]["id"] == contact]
    assert steps == ["complete", "complete", "active"]
    # Whippy's removal: finished on the step it was on, not deleted.
    fake.world.remove_contact(fake.sequence, contact)
    steps = [r["status"] for r in fake.world.rows(fake.sequence) if r["contact"]["id"] == contact]
    assert steps == ["complete", "complete", "finished"]
    fake.world.hard_delete(fake.sequence, contact)
    assert all(r["contact"]["id"] != contact for r in fake.world.rows(fake.sequence))


def test_filters(fake: Fake) -> None:
    first_step = fake.client.get(f"/v1/sequences/{fake.sequence}").json()["data"]["steps"][0]
    active = contacts(fake, status="active", limit=500).json()
    assert active["total"] == 30  # one active row per contact
    on_first = contacts(fake, step_ids=first_step["id"], limit=500).json()
    assert on_first["total"] == 30  # every contact passed through step 1
    contact = active["data"][0]["contact"]["id"]
    fake.world.unsubscribe(fake.sequence, contact)
    gone = contacts(fake, unsubscribed="true").json()["data"]
    assert [r["contact"]["id"] for r in gone] == [contact]
    assert contacts(fake, responded="maybe").status_code == 422


def test_faults_use_whippys_envelope_and_millisecond_header(fake: Fake) -> None:
    fake.faults.add(FaultKind.RATE_LIMIT, retry_after=1.5)
    limited = fake.client.get("/v1/sequences")
    assert limited.status_code == 429
    assert limited.headers[RETRY_MS_HEADER] == "1500"
    assert limited.json()["errors"] == [{"description": "Rate limit exceeded."}]
    fake.faults.add(FaultKind.STATUS, status=503)
    assert fake.client.get("/v1/sequences").json()["status"] == 503
    fake.faults.add(FaultKind.MISSING_FIELD)
    assert "contact" not in contacts(fake).json()["data"][0]
    fake.faults.add(FaultKind.MISSING_FIELD)
    assert "data" not in fake.client.get(f"/v1/sequences/{fake.sequence}").json()


def test_pagination_anomalies(fake: Fake) -> None:
    fake.faults.add(FaultKind.EMPTY_PAGE)
    assert contacts(fake, limit=10, offset=10).json() == {"data": [], "total": 60}
    fake.faults.add(FaultKind.REPEAT_CURSOR)
    first = contacts(fake, limit=10, offset=0).json()  # page 1 cannot repeat: passes
    again = contacts(fake, limit=10, offset=10).json()
    assert again == first
    assert fake.faults.fired == [
        (FaultKind.EMPTY_PAGE, f"/v1/sequences/{fake.sequence}/contacts"),
        (FaultKind.REPEAT_CURSOR, f"/v1/sequences/{fake.sequence}/contacts"),
    ]


def test_harness_constants_match_the_contract() -> None:
    assert provider_whippy.API_KEY == providers.API_KEY
    assert provider_whippy.PAGE_SIZE == providers.PAGE_SIZE
    assert providers.HARNESSES["whippy"] is provider_whippy.WhippyHarness


# -- WhippySource + normalizer against the fake ----------------------------------------------


class NoSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def listing(
    base_url: str,
    http: httpx.AsyncClient,
    *,
    sequences: tuple[str, ...] = (),
    sleep: NoSleep | None = None,
) -> dict[str, Enrollment]:
    """Every enrollment the real source and normalizer make of the fake at `base_url`."""
    params = SourceParams(
        name="whippy-fake",
        api_key=KEY,
        base_url=base_url,
        sequences=sequences,
        http=http,
        limiter=PacingLimiter(per_second=10_000),
        sleep=sleep or NoSleep(),
    )
    source = build_source("whippy", params)
    found: dict[str, Enrollment] = {}
    async for page in source.pages():
        for record in page.records:
            enrollment = normalize_whippy.normalize(record, page=page)
            found[enrollment.enrollment_id] = enrollment
    return found


def expected(fake: Fake) -> dict[str, tuple[Status, int]]:
    """What the world says: each contact's status and 1-based step."""
    sequence = fake.world.sequence(fake.sequence)
    assert sequence is not None
    steps = {s["id"]: s["position"] for s in sequence["steps"]}
    out: dict[str, tuple[Status, int]] = {}
    for row in fake.world.rows(fake.sequence):
        contact = row["contact"]["id"]
        newest = fake.world.newest(fake.sequence, contact)
        out[f"{fake.sequence}:{contact}"] = (Status.ACTIVE, steps[newest["step_id"]] + 1)
    return out


@pytest.mark.parametrize(
    ("max_limit", "clamp", "total"),
    [(500, False, True), (100, False, True), (100, True, True), (500, False, False)],
    ids=["documented", "limit-100-refused", "limit-100-clamped", "no-total"],
)
async def test_every_variant_lists_every_enrollment(
    fake: Fake, http: httpx.AsyncClient, max_limit: int, clamp: bool, total: bool
) -> None:
    for n in range(300):  # 630 rows: more than one page even at 500
        fake.world.add_contact(fake.sequence, name=f"Q {n}", step=2)
    fake.app.max_limit, fake.app.clamp_limit = max_limit, clamp
    fake.world.include_total = total
    found = await listing(fake.server.base_url, http)
    assert {k: (e.state.status, e.state.step) for k, e in found.items()} == expected(fake)
    assert len(found) == 330
    limits = {r.param("limit") for r in fake.server.requests if r.path.endswith("/contacts")}
    assert limits == ({"100"} if max_limit == 100 and not clamp else {"500"})


async def test_states_follow_the_world(fake: Fake, http: httpx.AsyncClient) -> None:
    a, b, c, d, e = (
        fake.world.add_contact(fake.sequence, name=n, step=3) for n in ("A", "B", "C", "D", "E")
    )
    removed_early = fake.world.add_contact(fake.sequence, name="F", step=1, email="")
    fake.clock.advance(1)
    fake.world.set_status(fake.sequence, a, StepStatus.COMPLETE)
    fake.world.remove_contact(fake.sequence, removed_early)
    fake.world.set_status(fake.sequence, b, StepStatus.INACTIVE)
    fake.world.unsubscribe(fake.sequence, c)
    fake.world.respond(fake.sequence, c)
    fake.world.set_status(fake.sequence, d, StepStatus.REMOVED)
    found = await listing(fake.server.base_url, http)
    key = f"{fake.sequence}:"
    assert found[key + a].state == State(status=Status.FINISHED, raw_status="complete", step=3,
                                         step_id=found[key + a].state.step_id, replied=False,
                                         bounced=None, opted_out=False)  # fmt: skip
    assert found[key + b].state.status is Status.BLOCKED
    assert (found[key + c].state.opted_out, found[key + c].state.replied) == (True, True)
    assert found[key + d].state.status is Status.REMOVED
    assert found[key + e].state.replied is False  # listed by no `responded=true` page
    # Removed on step 1 of 3: finished, not active (removesequencecontacts).
    early = found[key + removed_early]
    assert (early.state.status, early.state.step) == (Status.FINISHED, 1)
    assert early.contact.email is None  # "" from the provider is null
    assert early.contact.phone is not None
    assert early.contact.phone.startswith("+1")


async def test_allow_list_requests_only_named_sequences(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    other = fake.world.add_sequence("Other", steps=1)
    fake.world.add_contact(other, name="Z")
    found = await listing(fake.server.base_url, http, sequences=(other,))
    assert {k.split(":")[0] for k in found} == {other}
    assert fake.server.count(contains=fake.sequence) == 0


async def test_rate_limit_fault_is_waited_out_by_the_header(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    fake.faults.add(FaultKind.RATE_LIMIT, retry_after=2.5, path_contains="/contacts")
    sleeps = NoSleep()
    found = await listing(fake.server.base_url, http, sleep=sleeps)
    assert len(found) == 30
    assert 2.5 in sleeps.calls


async def test_a_row_missing_its_contact_is_a_record_whose_id_is_unreadable(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    fake.faults.add(FaultKind.MISSING_FIELD, path_contains="/contacts")
    # The source cannot fold it, so it passes it on alone; the normalizer cannot read its id
    # (the pipeline then quarantines it and treats the listing as incomplete).
    with pytest.raises(UnreadableId, match="field 'contact' is missing") as info:
        await listing(fake.server.base_url, http)
    assert KEY not in str(info.value)


# -- the demo script ---------------------------------------------------------------------------


async def test_demo_script_changes_what_it_says(http: httpx.AsyncClient) -> None:
    world = WhippyWorld(clock=ManualClock(T0))
    demo_whippy.populate_whippy(world)
    changes = demo_whippy.script_whippy(world)
    with FakeServer(WhippyApp(world, api_key=KEY)) as server:
        before = await listing(server.base_url, http)
        assert len(before) == 4
        for change in changes:
            change.apply()
        after = await listing(server.base_url, http)
    by_name = {e.contact.name: (before[k].state, e.state) for k, e in after.items()}
    dana, eli, farah, gus = (by_name[n] for n in ("Dana Whitfield", "Eli Moreno",
                                                   "Farah Haddad", "Gus Larsen"))  # fmt: skip
    assert (dana[0].step, dana[1].step) == (1, 2)
    assert (eli[0].opted_out, eli[1].opted_out) == (False, True)
    assert (farah[0].replied, farah[1].replied) == (False, True)
    assert (gus[0].status, gus[1].status) == (Status.ACTIVE, Status.FINISHED)
    assert [c.says for c in changes] == [
        "Whippy: Dana moves to step 2",
        "Whippy: Eli unsubscribes",
        "Whippy: Farah replies",
        "Whippy: Gus finishes the sequence",
    ]
