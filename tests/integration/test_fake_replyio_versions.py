"""The fake Reply.io API serves v3 and v4 exactly in the vendors' example shapes, a one-version
account answers 404 on the other, and what the vendor leaves open is switchable (both tested)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.demo.fakes.replyio import ContactStatus, ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import FakeServer
from worker.enrollment import Enrollment, Status
from worker.normalize import NORMALIZERS
from worker.sources.limiter import PacingLimiter
from worker.sources.params import LocalMemory
from worker.sources.registry import SourceParams, build_source

KEY = "rk-fake-versions-0042"
EXAMPLES = Path(__file__).resolve().parents[1] / "contract" / "vendor_examples"


def example_item(name: str) -> dict[str, Any]:
    item: dict[str, Any] = json.loads((EXAMPLES / name).read_text())["items"][0]
    return item


@pytest.fixture
def world() -> ReplyioWorld:
    world = ReplyioWorld()
    world.add_sequence(100, "Q4 outbound")
    world.add_contact(100, 1, email="a@example.com", first="Ann", last="Lee", company="Acme")
    world.add_contact(100, 2, email="b@example.com")
    return world


@pytest.fixture
def app(world: ReplyioWorld) -> ReplyioApp:
    return ReplyioApp(world, api_key=KEY)


@pytest.fixture
def server(app: ReplyioApp) -> Iterator[FakeServer]:
    with FakeServer(app) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def get(server: FakeServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.base_url + path, headers=headers or {"X-API-Key": KEY})


@pytest.mark.parametrize(
    ("version", "example"),
    [
        ("v3", "replyio.v3.list-contacts.doc-example.json"),
        ("v4", "replyio.v4.list-contacts.doc-example.json"),
    ],
)
def test_each_version_serves_exactly_the_vendor_example_keys(
    server: FakeServer, version: str, example: str
) -> None:
    body = get(server, f"/{version}/sequences/100/contacts?top=1").json()
    assert set(body) == {"items", "hasMore"}
    [item] = body["items"]
    reference = example_item(example)
    assert set(item) == set(reference)
    for key, value in reference.items():
        assert type(item[key]) is type(value) or value is None or item[key] is None, key
        if isinstance(value, dict):
            assert set(item[key]) == set(value)
            assert {k: type(v) for k, v in item[key].items()} == {
                k: type(v) for k, v in value.items()
            }


def test_both_auth_styles_are_accepted_and_a_wrong_key_is_not(server: FakeServer) -> None:
    assert get(server, "/v3/sequences", Authorization=f"Bearer {KEY}").status_code == 200
    assert get(server, "/v3/sequences", **{"X-API-Key": KEY}).status_code == 200
    assert get(server, "/v4/sequences", Authorization="Bearer nope").status_code == 401


def test_sequence_status_is_lower_case_in_v3_and_archiving_shows(
    server: FakeServer, world: ReplyioWorld
) -> None:
    world.archive_sequence(100)
    [v3] = get(server, "/v3/sequences").json()["items"]
    [v4] = get(server, "/v4/sequences").json()["items"]
    assert (v3["status"], v3["isArchived"]) == ("archived", True)
    assert (v4["status"], v4["isArchived"]) == ("Archived", True)


@pytest.mark.parametrize("only", ["v3", "v4"])
def test_a_one_version_account_answers_404_on_the_other(
    server: FakeServer, app: ReplyioApp, only: str
) -> None:
    app.versions = frozenset({only})
    other = "v4" if only == "v3" else "v3"
    assert get(server, f"/{only}/sequences").status_code == 200
    assert get(server, f"/{other}/sequences").status_code == 404


async def listing(server: FakeServer, http: httpx.AsyncClient) -> dict[str, Enrollment]:
    params = SourceParams(
        name="reply",
        api_key=KEY,
        base_url=server.base_url,
        sequences=(),
        http=http,
        limiter=PacingLimiter(per_second=10_000),
        memory=LocalMemory(),
    )
    source = build_source("replyio", params)
    found: dict[str, Enrollment] = {}
    async for page in source.pages():
        for record in page.records:
            enrollment = NORMALIZERS["replyio"](record, page=page)
            found[enrollment.enrollment_id] = enrollment
    return found


@pytest.mark.parametrize("auto_reply_is_replied", [True, False])
@pytest.mark.parametrize("versions", [{"v3", "v4"}, {"v4"}], ids=["v3", "v4-only"])
async def test_an_auto_reply_never_reads_as_a_reply_whatever_the_account_says(
    server: FakeServer,
    app: ReplyioApp,
    world: ReplyioWorld,
    http: httpx.AsyncClient,
    auto_reply_is_replied: bool,
    versions: set[str],
) -> None:
    # Vendor material is silent on v3's isReplied for an auto-reply: both answers are served.
    world.v3_auto_reply_is_replied = auto_reply_is_replied
    app.versions = frozenset(versions)
    world.set_status(100, 1, ContactStatus.OUT_OF_OFFICE)
    world.reply(100, 2)
    found = await listing(server, http)
    v3 = "v3" in versions
    auto, real = found["100:1"].state, found["100:2"].state
    assert (auto.status, auto.reason) == (Status.PAUSED, "AutoReplied")
    assert auto.replied is (False if v3 else None)
    assert real.status is Status.FINISHED
    assert real.replied is (True if v3 else None)  # v4 has no reply signal
