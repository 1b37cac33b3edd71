"""SlackNotifier against a real local receiver standing in for hooks.slack.com."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis
from slack_sdk.models.blocks import Block, HeaderBlock

from notifiers.base import OutboundEvent
from notifiers.slack import SlackNotifier
from tests.integration._http_receiver import Canned, Receiver, running_receiver
from tests.integration.test_delivery import make_event
from worker.demo.fakes.receiver import WebhookReceiver
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import DeliveryPermanent, DeliveryRetriable
from worker.events import Event, EventType
from worker.sources.shared_limiter import Quota, SharedRateLimiter

PATH = "/services/T0001/B0002/XoXoSecretToken42"  # the whole URL is the credential


def _event(n: int, event_type: EventType = EventType.REPLIED) -> OutboundEvent:
    state = State(status=Status.ACTIVE, raw_status="Active", step=1)
    event = Event(
        id=f"evt_{n:032x}",
        type=event_type,
        source="reply-emea",
        provider="replyio",
        enrollment_id=f"100:{n}",
        sequence=SequenceRef(id="100", name="Q4 outbound"),
        contact=Contact(id=str(n), name=f"Contact {n}"),
        previous=state,
        current=state,
        detected_at=datetime(2026, 11, 22, 13, 0, tzinfo=UTC),
    )
    return OutboundEvent(id=event.id, body=event.to_json())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def slack(receiver: Receiver) -> AsyncIterator[SlackNotifier]:
    notifier = SlackNotifier(
        name="sales-slack",
        url=receiver.url + PATH,
        allow_private_network=True,
        timeout=5,
        clock=lambda: 1_700_000_000.0,
    )
    yield notifier
    await notifier.aclose()


def _assert_no_leak(exc: BaseException, receiver: Receiver) -> None:
    text = str(exc)
    assert text.startswith("destination 'sales-slack': ")
    for secret in (receiver.url, PATH, "XoXoSecretToken42", "T0001", "127.0.0.1"):
        assert secret not in text


def _posted_blocks(receiver: Receiver) -> tuple[dict[str, object], list[Block]]:
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == PATH
    assert request.headers["content-type"] == "application/json"
    message = orjson.loads(request.body)
    blocks = Block.parse_all(message["blocks"])
    for block in blocks:
        block.validate_json()
    return message, blocks


async def test_one_event_posts_one_section(receiver: Receiver, slack: SlackNotifier) -> None:
    receiver.reply(Canned(status=200, body=b"ok"))
    await slack.send([_event(1)])
    message, blocks = _posted_blocks(receiver)
    assert message["text"] == "Contact 1 replied in Q4 outbound [reply-emea]"
    assert len(blocks) == 1
    assert receiver.requests[0].headers["user-agent"].startswith("seqwatch/")


async def test_a_hundred_events_become_one_digest(receiver: Receiver, slack: SlackNotifier) -> None:
    assert slack.max_batch == 100
    await slack.send([_event(n) for n in range(100)])
    message, blocks = _posted_blocks(receiver)
    assert len(blocks) == 13  # header, counts, 10 lines, "+90 more"
    assert isinstance(blocks[0], HeaderBlock)
    assert str(message["text"]).startswith("seqwatch: 100 events")


async def test_no_events_posts_nothing(receiver: Receiver, slack: SlackNotifier) -> None:
    await slack.send([])
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b"invalid_token"),
        (404, b"no_service"),
        (410, b"channel_is_archived"),
        (400, b"invalid_payload"),
    ],
)
async def test_slack_refusals_are_permanent_and_name_the_code(
    receiver: Receiver, slack: SlackNotifier, status: int, body: bytes
) -> None:
    receiver.reply(Canned(status=status, body=body))
    with pytest.raises(DeliveryPermanent) as info:
        await slack.send([_event(1)])
    assert str(info.value) == f"destination 'sales-slack': HTTP {status} ({body.decode()})"
    _assert_no_leak(info.value, receiver)


async def test_an_html_error_body_is_not_echoed(receiver: Receiver, slack: SlackNotifier) -> None:
    receiver.reply(Canned(status=400, body=b"<html>bad request for " + PATH.encode() + b"</html>"))
    with pytest.raises(DeliveryPermanent) as info:
        await slack.send([_event(1)])
    assert str(info.value) == "destination 'sales-slack': HTTP 400"


async def test_rate_limit_is_retriable_with_retry_after(
    receiver: Receiver, slack: SlackNotifier
) -> None:
    receiver.reply(Canned(status=429, headers=(("Retry-After", "30"),), body=b"rate_limited"))
    with pytest.raises(DeliveryRetriable) as info:
        await slack.send([_event(1)])
    assert info.value.retry_after == 30.0
    assert str(info.value) == "destination 'sales-slack': HTTP 429 (rate_limited)"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retriable(
    receiver: Receiver, slack: SlackNotifier, status: int
) -> None:
    receiver.reply(Canned(status=status))
    with pytest.raises(DeliveryRetriable) as info:
        await slack.send([_event(1)])
    _assert_no_leak(info.value, receiver)


async def test_timeout_is_retriable(receiver: Receiver) -> None:
    receiver.reply(Canned(hold=True))
    slack = SlackNotifier(
        name="sales-slack", url=receiver.url + PATH, allow_private_network=True, timeout=0.2
    )
    try:
        with pytest.raises(DeliveryRetriable, match="timed out") as info:
            await slack.send([_event(1)])
    finally:
        receiver.release.set()
        await slack.aclose()
    _assert_no_leak(info.value, receiver)


async def test_private_target_refused_by_default(receiver: Receiver) -> None:
    slack = SlackNotifier(name="sales-slack", url=receiver.url + PATH)
    try:
        with pytest.raises(DeliveryPermanent, match="allow_private_network = true") as info:
            await slack.send([_event(1)])
    finally:
        await slack.aclose()
    assert receiver.requests == []
    _assert_no_leak(info.value, receiver)


async def test_a_corrupt_stored_event_is_permanent(
    receiver: Receiver, slack: SlackNotifier
) -> None:
    with pytest.raises(DeliveryPermanent, match="evt_bad"):
        await slack.send([OutboundEvent(id="evt_bad", body=b"[1, 2]")])
    assert receiver.requests == []


async def test_repr_hides_the_url(slack: SlackNotifier) -> None:
    assert repr(slack) == "SlackNotifier(name='sales-slack')"


async def test_messages_to_one_webhook_are_paced_to_one_per_second() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    with WebhookReceiver(slack=True) as receiver:
        notifier = SlackNotifier(
            name="s", url=receiver.url + "/hook", allow_private_network=True,
            monotonic=lambda: now[0], sleep=sleep,
        )  # fmt: skip
        events = [make_event(i) for i in range(3)]
        for event in events:
            await notifier.send([OutboundEvent(id=event.id, body=event.to_json())])
            now[0] += 0.25
        await notifier.aclose()
    assert len(receiver.accepted) == 3
    assert waits == [0.75, 0.75]


async def test_workers_share_one_pace_per_webhook(store: Redis) -> None:
    quota = Quota(requests=1, per_seconds=0.2)  # Slack's is 1/s; shortened for the test
    with WebhookReceiver(slack=True) as receiver:
        workers = [
            SlackNotifier(
                name="s",
                url=receiver.url + "/hook",
                allow_private_network=True,
                pacer=SharedRateLimiter(store, source="slack.s", quotas=[quota]),
            )
            for _ in range(2)
        ]
        posted: list[float] = []

        async def send(notifier: SlackNotifier, n: int) -> None:
            for i in range(3):
                event = make_event(10 * n + i)
                await notifier.send([OutboundEvent(id=event.id, body=event.to_json())])
                posted.append(time.monotonic())

        await asyncio.gather(*(send(w, n) for n, w in enumerate(workers)))
        for worker in workers:
            await worker.aclose()
    assert len(receiver.accepted) == 6
    posted.sort()
    gaps = [b - a for a, b in itertools.pairwise(posted)]
    assert min(gaps) >= 0.2 - 0.05  # never two messages closer than the shared pace
