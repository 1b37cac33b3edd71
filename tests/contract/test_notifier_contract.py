"""One contract, every destination type: deliver a batch, classify failures, leak nothing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from notifiers.base import Notifier, OutboundEvent
from notifiers.registry import NotifierParams, build_notifier
from tests.integration.test_delivery import SECRET, make_event
from worker.demo.fakes.receiver import WebhookReceiver
from worker.errors import DeliveryPermanent, DeliveryRetriable

NETWORKED = ("webhook", "slack")


@dataclass
class Peer:
    notifier: Notifier
    receiver: WebhookReceiver | None
    stream: io.StringIO
    url: str


@pytest.fixture(params=["webhook", "slack", "console"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receiver(kind: str) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(slack=kind == "slack") as running:
        yield running


@pytest.fixture
async def peer(kind: str, receiver: WebhookReceiver) -> AsyncIterator[Peer]:
    stream = io.StringIO()
    url = receiver.url + "/services/T000/B000/SECRETPATHxyz"
    notifier = build_notifier(
        NotifierParams(
            name="dest",
            type=kind,
            url=url if kind in NETWORKED else None,
            secrets=(SECRET,) if kind == "webhook" else (),
            allow_private_network=True,
            stream=stream,
        )
    )
    yield Peer(notifier=notifier, receiver=receiver, stream=stream, url=url)
    await notifier.aclose()


def batch(n: int) -> list[OutboundEvent]:
    events = [make_event(i) for i in range(n)]
    return [OutboundEvent(id=e.id, body=e.to_json()) for e in events]


async def test_a_batch_is_delivered_whole(kind: str, peer: Peer) -> None:
    events = batch(min(3, peer.notifier.max_batch))
    for start in range(0, len(events), peer.notifier.max_batch):
        await peer.notifier.send(events[start : start + peer.notifier.max_batch])
    if kind == "console":
        assert len(peer.stream.getvalue().strip().splitlines()) == len(events)
    elif kind == "webhook":
        assert peer.receiver is not None
        assert sorted(peer.receiver.received_ids()) == sorted(e.id for e in events)
    else:
        assert peer.receiver is not None
        assert len(peer.receiver.accepted) == 1  # one digest message for the batch
        assert "blocks" in peer.receiver.accepted[0].json


@pytest.mark.parametrize("kind", NETWORKED)  # a console cannot fail
@pytest.mark.parametrize(
    ("status", "error"),
    [(503, DeliveryRetriable), (429, DeliveryRetriable), (400, DeliveryPermanent),
     (404, DeliveryPermanent)],
)  # fmt: skip
async def test_failures_are_classified_without_leaking_the_url(
    kind: str, peer: Peer, status: int, error: type[Exception]
) -> None:
    assert peer.receiver is not None
    peer.receiver.fail_next(1, status=status, retry_after=3 if status == 429 else None)
    with pytest.raises(error) as caught:
        await peer.notifier.send(batch(1))
    message = str(caught.value)
    assert "dest" in message
    assert str(status) in message
    assert "SECRETPATH" not in message
    assert peer.url not in message
    if status == 429:
        assert isinstance(caught.value, DeliveryRetriable)
        assert caught.value.retry_after == 3
