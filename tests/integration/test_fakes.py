"""The fake provider APIs and the webhook receiver, exercised over real local HTTP."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from worker.demo.fakes.faults import FaultKind, FaultPlan
from worker.demo.fakes.receiver import WebhookReceiver
from worker.demo.fakes.replyio import ContactStatus, ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer, Mount, Request, Response
from worker.demo.fakes.unify import ManualClock, UnifyApp, UnifyWorld

KEY = "test-key-123"
REPLY_FIELDS = {
    "contactId", "sequenceId", "email", "firstName", "lastName", "company", "title", "status",
    "subStatus", "currentStep", "addingDate", "movingDate", "nextSendAfter", "isOptedOut",
    "emailAccountId", "linkedInAccountId", "icpScore",
}  # fmt: skip
UNIFY_FIELDS = {
    "id", "created_at", "updated_at", "sequence", "person", "mailbox", "enrolled_by_play",
    "reply_email_message", "status", "is_blocked", "is_bounced", "is_canceled", "is_excluded",
    "is_opted_out", "is_paused", "is_replied", "started_at", "ended_at",
}  # fmt: skip
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reply:
    client: httpx.Client
    world: ReplyioWorld
    faults: FaultPlan
    server: FakeServer


@dataclass(frozen=True, slots=True)
class Unify:
    client: httpx.Client
    world: UnifyWorld
    faults: FaultPlan
    server: FakeServer
    clock: ManualClock


@pytest.fixture
def reply() -> Iterator[Reply]:
    world = ReplyioWorld(clock=ManualClock(T0))
    world.add_sequence(100, "Q4 outbound")
    world.add_sequence(200, "Webinar follow-up", status="Paused")
    for n in range(60):
        world.add_contact(100, 1000 + n, email=f"p{n}@acme.io", first="P", last=str(n))
    faults = FaultPlan()
    with FakeServer(ReplyioApp(world, api_key=KEY, faults=faults)) as server:
        headers = {"X-API-Key": KEY}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=5) as client:
            yield Reply(client, world, faults, server)
        faults.wake()


@pytest.fixture
def unify() -> Iterator[Unify]:
    clock = ManualClock(T0)
    world = UnifyWorld(clock=clock, seed=7)
    faults = FaultPlan()
    with FakeServer(UnifyApp(world, api_key=KEY, faults=faults)) as server:
        headers = {"x-api-key": KEY}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=5) as client:
            yield Unify(client, world, faults, server, clock)
        faults.wake()


def _enroll_many(u: Unify, count: int) -> list[str]:
    seq = u.world.add_sequence("Q4 outbound")
    return [u.world.enroll(seq, email=f"p{n}@example.com") for n in range(count)]


def _unify_list(u: Unify, **params: str | int | list[str]) -> list[dict[str, object]]:
    resp = u.client.get("/sequences/v1/enrollments", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["next_cursor"] is None
    return list(body["enrollments"])


# -- Reply.io -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
)
def test_reply_rejects_bad_credentials_with_empty_401(
    reply: Reply, headers: dict[str, str]
) -> None:
    resp = httpx.get(f"{reply.server.base_url}/v4/sequences", headers=headers)
    assert resp.status_code == 401
    assert resp.content == b""


@pytest.mark.parametrize("headers", [{"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}])
def test_reply_accepts_both_header_styles(reply: Reply, headers: dict[str, str]) -> None:
    resp = httpx.get(f"{reply.server.base_url}/v4/sequences", headers=headers)
    assert resp.status_code == 200


def test_reply_lists_sequences_in_v4_shape(reply: Reply) -> None:
    body = reply.client.get("/v4/sequences").json()
    assert body["hasMore"] is False
    assert [s["id"] for s in body["items"]] == [100, 200]
    first = body["items"][0]
    assert set(first) == {"id", "ownerUserId", "name", "status", "created", "isArchived"}
    assert first["name"] == "Q4 outbound"
    detail = reply.client.get("/v4/sequences/100").json()
    assert [s["number"] for s in detail["steps"]] == ["1", "2", "3"]


def test_reply_pages_contacts_to_the_end_with_has_more(reply: Reply) -> None:
    seen, skip, flags = [], 0, []
    while True:
        body = reply.client.get("/v4/sequences/100/contacts", params={"top": 25, "skip": skip})
        page = body.json()
        seen += [c["contactId"] for c in page["items"]]
        flags.append(page["hasMore"])
        if not page["hasMore"]:
            break
        skip += 25
    assert seen == list(range(1000, 1060))
    assert flags == [True, True, False]
    default = reply.client.get("/v4/sequences/100/contacts").json()
    assert len(default["items"]) == 25  # documented default top
    assert len(reply.client.get("/v4/sequences/100/contacts?top=1000").json()["items"]) == 60


@pytest.mark.parametrize("query", ["top=1001", "top=0", "skip=-1", "top=abc", "sort_by=nope"])
def test_reply_out_of_range_paging_is_a_problem_json_400(reply: Reply, query: str) -> None:
    resp = reply.client.get(f"/v4/sequences/100/contacts?{query}")
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert {"type", "title", "status", "detail", "code"} <= set(problem)
    assert problem["status"] == 400


def test_reply_unknown_sequence_lists_empty_but_get_is_404(reply: Reply) -> None:
    resp = reply.client.get("/v4/sequences/999/contacts")
    assert resp.status_code == 200
    assert resp.json() == {"items": [], "hasMore": False}
    missing = reply.client.get("/v4/sequences/999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "sequence.notFound"
    assert reply.client.get("/v4/nothing").status_code == 404


def test_reply_contact_has_every_documented_field_and_follows_mutations(reply: Reply) -> None:
    url = "/v4/sequences/100/contacts/1003"
    contact = reply.client.get(url).json()
    assert set(contact) == REPLY_FIELDS
    assert contact["status"] == "Active"
    assert contact["subStatus"] == "None"
    assert contact["addingDate"] == "2026-03-02T10:00:00+00:00"
    reply.world.set_status(100, 1003, ContactStatus.OUT_OF_OFFICE)
    reply.world.advance_step(100, 1003)
    reply.world.opt_out(100, 1003)
    contact = reply.client.get(url).json()
    assert (contact["status"], contact["subStatus"]) == ("OutOfOffice", "AutoReplied")
    assert contact["currentStep"] == 2
    assert contact["isOptedOut"] is True
    reply.world.move_contact(1004, from_seq=100, to_seq=200)
    moved = reply.client.get("/v4/sequences/200/contacts").json()["items"]
    assert [(c["contactId"], c["sequenceId"]) for c in moved] == [(1004, 200)]
    assert moved[0]["movingDate"] == "2026-03-02T10:00:00+00:00"
    reply.world.remove_contact(100, 1003)
    assert reply.client.get(url).status_code == 404
    listed = reply.client.get("/v4/sequences/100/contacts?top=1000").json()["items"]
    assert 1003 not in [c["contactId"] for c in listed]


def test_reply_sort_direction_desc_lists_newest_first(reply: Reply) -> None:
    body = reply.client.get("/v4/sequences/100/contacts?top=3&sort_direction=desc").json()
    assert [c["contactId"] for c in body["items"]] == [1059, 1058, 1057]


def test_reply_works_below_a_mount_prefix() -> None:
    world = ReplyioWorld()
    world.add_sequence(1, "S")
    app = ReplyioApp(world, api_key=KEY, prefix="/reply")
    uni = UnifyApp(UnifyWorld(), api_key=KEY)
    with FakeServer(Mount({"/r": app, "/u": uni})) as server:
        ok = httpx.get(f"{server.base_url}/r/reply/v4/sequences", headers={"X-API-Key": KEY})
        assert ok.json()["items"][0]["id"] == 1
        url = f"{server.base_url}/u/sequences/v1/enrollments"
        assert httpx.get(url, headers={"x-api-key": KEY}).json()["enrollments"] == []
        assert httpx.get(f"{server.base_url}/r/v4/sequences").status_code == 404


# -- Unify ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"x-api-key": "wrong"}, {"Authorization": f"Bearer {KEY}"}]
)
def test_unify_rejects_bad_credentials(unify: Unify, headers: dict[str, str]) -> None:
    resp = httpx.get(f"{unify.server.base_url}/sequences/v1/enrollments", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["status"] == "unauthorized"
    assert resp.json()["message"]


def test_unify_api_key_header_name_is_case_insensitive(unify: Unify) -> None:
    url = f"{unify.server.base_url}/sequences/v1/enrollments"
    assert httpx.get(url, headers={"X-Api-Key": KEY}).status_code == 200


def test_unify_enrollment_has_the_spec_shape(unify: Unify) -> None:
    seq = unify.world.add_sequence("Q4 outbound")
    eid = unify.world.enroll(seq, email="jane@example.com", first_name="Jane", play_name="Web")
    [listed] = _unify_list(unify)
    assert set(listed) == UNIFY_FIELDS
    assert listed["id"] == eid
    assert listed["created_at"] == listed["updated_at"] == "2026-03-02T10:00:00Z"
    assert listed["sequence"] == {"id": seq, "name": "Q4 outbound", "is_paused": False}
    assert listed["status"] == "IN_PROGRESS"
    one = unify.client.get(f"/sequences/v1/enrollments/{eid}")
    assert one.json() == listed
    unify.world.include_status = False
    assert "status" not in _unify_list(unify)[0]


def test_unify_pages_with_cursor_to_the_end(unify: Unify) -> None:
    ids = _enroll_many(unify, 230)
    seen, sizes, cursor = [], [], None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        body = unify.client.get("/sequences/v1/enrollments", params=params).json()
        seen += [e["id"] for e in body["enrollments"]]
        sizes.append(len(body["enrollments"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert sizes == [100, 100, 30]
    default = unify.client.get("/sequences/v1/enrollments").json()
    assert len(default["enrollments"]) == 25
    assert isinstance(default["next_cursor"], str)


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%%%", "cursor"),
        ("status=ACTIVE", "status"),
        ("status=DRAFT,FINISHED", "status"),
        ("updated_after=yesterday", "updated_after"),
        ("sequence_id=not-a-uuid", "sequence_id"),
    ],
)
def test_unify_invalid_parameters_are_bad_request(unify: Unify, query: str, path: str) -> None:
    resp = unify.client.get(f"/sequences/v1/enrollments?{query}")
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == "bad_request"
    assert body["errors"][0]["path"] == [path]
    assert body["errors"][0]["code"]


def test_unify_updated_after_is_inclusive_even_within_one_second(unify: Unify) -> None:
    a, b, c = _enroll_many(unify, 3)
    unify.clock.advance(5)
    unify.world.update(b, is_paused=True)
    t1 = "2026-03-02T10:00:05Z"
    assert [e["id"] for e in _unify_list(unify, updated_after=t1)] == [b]
    unify.world.update(c, is_replied=True)  # same second as b's change
    assert [e["id"] for e in _unify_list(unify, updated_after=t1)] == [b, c]
    before = _unify_list(unify, updated_before="2026-03-02T10:00:00Z")
    assert [e["id"] for e in before] == [a]
    offset = _unify_list(unify, updated_after="2026-03-02T11:00:05+01:00")
    assert [e["id"] for e in offset] == [b, c]


def test_unify_filters_by_status_sequence_and_person(unify: Unify) -> None:
    s1 = unify.world.add_sequence("One")
    s2 = unify.world.add_sequence("Two")
    a = unify.world.enroll(s1, email="a@x.io", status="DRAFT")
    b = unify.world.enroll(s2, email="b@x.io")
    c = unify.world.enroll(s2, email="a@x.io")
    unify.world.update(b, status="FINISHED")
    by_status = _unify_list(unify, status=["DRAFT", "FINISHED"])
    assert [e["id"] for e in by_status] == [a, b]
    assert [e["id"] for e in _unify_list(unify, sequence_id=s2)] == [b, c]
    person = unify.client.get(f"/sequences/v1/enrollments/{a}").json()["person"]["id"]
    assert [e["id"] for e in _unify_list(unify, person_id=person)] == [a, c]


def test_unify_update_derives_fields_and_hard_delete_removes(unify: Unify) -> None:
    [eid] = _enroll_many(unify, 1)
    unify.clock.advance(60)
    unify.world.update(eid, status="FINISHED", is_replied=True, reply_category="NEGATIVE")
    record = unify.client.get(f"/sequences/v1/enrollments/{eid}").json()
    assert record["updated_at"] == record["ended_at"] == "2026-03-02T10:01:00Z"
    assert record["reply_email_message"]["classifications"][0]["category"] == "NEGATIVE"
    with pytest.raises(TypeError):
        unify.world.update(eid, step=3)
    unify.world.hard_delete(eid)
    missing = unify.client.get(f"/sequences/v1/enrollments/{eid}")
    assert missing.status_code == 404
    assert missing.json()["status"] == "not_found"
    assert _unify_list(unify) == []


def test_unify_lists_sequences_and_ids_are_seeded(unify: Unify) -> None:
    seq = unify.world.add_sequence("Q4 outbound", is_paused=True)
    body = unify.client.get("/sequences/v1/sequences").json()
    assert body["next_cursor"] is None
    assert body["sequences"][0]["id"] == seq
    assert body["sequences"][0]["is_paused"] is True
    assert {"owner", "send_schedule", "sequence_ruleset"} <= set(body["sequences"][0])
    again = UnifyWorld(seed=7)
    assert again.add_sequence("x") == seq


# -- faults (shared by both fakes) ----------------------------------------------------------


def test_status_fault_uses_each_providers_error_body(reply: Reply, unify: Unify) -> None:
    reply.faults.add("status", status=503)
    unify.faults.add(FaultKind.STATUS, status=500)
    r = reply.client.get("/v4/sequences/100/contacts")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    u = unify.client.get("/sequences/v1/enrollments")
    assert (u.status_code, u.json()["status"]) == (500, "error")
    assert reply.client.get("/v4/sequences/100/contacts").status_code == 200
    assert unify.client.get("/sequences/v1/enrollments").status_code == 200


def test_rate_limit_fault_sends_retry_after(reply: Reply, unify: Unify) -> None:
    reply.faults.add("rate_limit", retry_after=2, times=2)
    unify.faults.add("rate_limit", retry_after=0.25)
    for _ in range(2):
        r = reply.client.get("/v4/sequences")
        assert (r.status_code, r.headers["retry-after"]) == (429, "2")
        assert r.json()["status"] == 429
    assert reply.client.get("/v4/sequences").status_code == 200
    u = unify.client.get("/sequences/v1/enrollments")
    assert (u.status_code, u.headers["retry-after"]) == (429, "0.25")
    assert u.json()["status"] == "rate_limited"


def test_malformed_and_missing_field_faults(reply: Reply, unify: Unify) -> None:
    _enroll_many(unify, 2)
    reply.faults.add("malformed_json")
    reply.faults.add("missing_field", path_contains="/contacts")
    unify.faults.add("missing_field", field="updated_at")
    r = reply.client.get("/v4/sequences/100/contacts")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    items = reply.client.get("/v4/sequences/100/contacts").json()["items"]
    assert "contactId" not in items[0]
    assert "contactId" in items[1]
    enrollments = unify.client.get("/sequences/v1/enrollments").json()["enrollments"]
    assert "updated_at" not in enrollments[0]
    assert reply.faults.pending() == unify.faults.pending() == 0


def test_timeout_and_reset_faults(reply: Reply) -> None:
    reply.faults.add("timeout", delay=2.0)
    reply.faults.add("reset")
    with pytest.raises(httpx.ReadTimeout):
        reply.client.get("/v4/sequences", timeout=0.2)
    reply.faults.wake()
    with pytest.raises(httpx.TransportError):
        reply.client.get("/v4/sequences")
    assert reply.client.get("/v4/sequences").status_code == 200


def test_path_contains_scopes_a_fault(reply: Reply) -> None:
    reply.faults.add("status", status=502, path_contains="/contacts")
    assert reply.client.get("/v4/sequences").status_code == 200
    assert reply.client.get("/v4/sequences/100/contacts").status_code == 502
    assert reply.faults.fired == [(FaultKind.STATUS, "/v4/sequences/100/contacts")]


def test_reply_pagination_anomalies(reply: Reply) -> None:
    reply.faults.add("empty_page")
    reply.faults.add("repeat_cursor")
    reply.client.get("/v4/sequences/100/contacts/1000")  # single reads never take them
    empty = reply.client.get("/v4/sequences/100/contacts?top=25").json()
    assert empty == {"items": [], "hasMore": True}
    first = reply.client.get("/v4/sequences/100/contacts?top=25").json()
    repeated = reply.client.get("/v4/sequences/100/contacts?top=25&skip=25").json()
    assert repeated == first
    assert reply.faults.pending() == 0


def test_unify_pagination_anomalies(unify: Unify) -> None:
    ids = _enroll_many(unify, 5)
    unify.faults.add("empty_page")
    unify.faults.add("repeat_cursor")
    empty = unify.client.get("/sequences/v1/enrollments?limit=2").json()
    assert empty["enrollments"] == []
    assert empty["next_cursor"] is not None
    url = "/sequences/v1/enrollments?limit=2&cursor="
    page1 = unify.client.get(url + empty["next_cursor"]).json()
    assert [e["id"] for e in page1["enrollments"]] == ids[:2]
    assert page1["next_cursor"] == empty["next_cursor"]  # the loop a paginator must catch
    again = unify.client.get(url + page1["next_cursor"]).json()
    assert [e["id"] for e in again["enrollments"]] == ids[:2]
    page2 = unify.client.get(url + again["next_cursor"]).json()
    assert [e["id"] for e in page2["enrollments"]] == ids[2:4]
    assert unify.faults.pending() == 0


def test_cursor_is_opaque_base64(unify: Unify) -> None:
    _enroll_many(unify, 3)
    cursor = unify.client.get("/sequences/v1/enrollments?limit=1").json()["next_cursor"]
    base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))  # decodes; content is ours


# -- server and receiver --------------------------------------------------------------------


class _Boom:
    def handle(self, request: Request) -> Response:
        raise RuntimeError("broken fake")


def test_server_counts_requests_and_reports_app_errors(reply: Reply) -> None:
    reply.client.get("/v4/sequences")
    reply.client.get("/v4/sequences/100/contacts")
    reply.client.get("/v4/sequences/100/contacts?skip=25")
    assert reply.server.count("/v4/sequences/100/contacts") == 2
    assert reply.server.count(contains="/v4/") == 3
    assert reply.server.requests[2].query == {"skip": ["25"]}
    assert reply.server.requests[0].headers["X-API-KEY"] == KEY
    with FakeServer(_Boom()) as server:
        assert httpx.get(server.base_url).status_code == 500
        assert isinstance(server.errors[0], RuntimeError)


def _verifier(secret: str) -> Callable[[Mapping[str, str], bytes], bool]:
    hook = Webhook(secret)

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        hook.verify(body, dict(headers))
        return True

    return verify


def test_receiver_records_verifies_and_scripts_failures() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    hook = Webhook(secret)
    receiver = WebhookReceiver(verify=_verifier(secret))
    receiver.fail_next(2, status=503, retry_after=1)
    with receiver:
        body = json.dumps({"type": "enrollment.enrolled", "data": {"id": "evt_1"}})
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": "evt_1",
            "Webhook-Timestamp": str(int(now.timestamp())),
            "Webhook-Signature": hook.sign("evt_1", now, body),
        }
        answers = [httpx.post(f"{receiver.url}/hook", content=body, headers=headers) for _ in "abc"]
        forged = httpx.post(receiver.url, content=body, headers={**headers, "Webhook-Id": "x"})
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "1"
    assert forged.status_code == 200
    assert receiver.received_ids() == ["evt_1", "x"]
    first = receiver.deliveries[0]
    assert first.headers["webhook-id"] == "evt_1"
    assert first.json["data"]["id"] == "evt_1"
    assert first.path == "/hook"
    assert [d.verified for d in receiver.deliveries] == [True, True, True, False]


def test_receiver_wait_for_and_slack_mode() -> None:
    with WebhookReceiver(slack=True) as receiver:
        assert receiver.wait_for(1, timeout=0.05) is False
        poster = threading.Thread(target=httpx.post, args=(receiver.url,), kwargs={"json": {}})
        poster.start()
        assert receiver.wait_for(1, timeout=5) is True
        poster.join()
        resp = httpx.post(receiver.url, json={"text": "hi"})
        assert (resp.text, resp.headers["content-type"]) == ("ok", "text/plain")
        assert receiver.deliveries[1].verified is None
        assert httpx.get(receiver.url).status_code == 405
