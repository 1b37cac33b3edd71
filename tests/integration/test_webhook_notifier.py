"""WebhookNotifier against a real local receiver, verified with the standardwebhooks library."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import pytest
from standardwebhooks import Webhook

from notifiers.base import OutboundEvent
from notifiers.webhook import WebhookNotifier
from tests.integration._http_receiver import Canned, Receiver, running_receiver
from worker.errors import ConfigError, DeliveryError, DeliveryPermanent, DeliveryRetriable

SECRET = "whsec_" + base64.b64encode(b"crm-webhook-secret-for-the-tests").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-secret-being-rotated-out-now").decode()
PATH = "/hooks/tok-9f8e7d6c"  # a path token: as secret as the signing key
EVENT = OutboundEvent(
    id="evt_0123456789abcdef",
    body=b'{"type":"enrollment.replied","timestamp":"2026-11-22T13:00:05.120Z",'
    b'"data":{"id":"evt_0123456789abcdef","contact":{"name":"Zo\xc3\xab"}}}',
)
NOW = 1_700_000_000.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def _notifier(receiver: Receiver, **overrides: object) -> WebhookNotifier:
    options: dict[str, object] = {
        "name": "crm",
        "url": receiver.url + PATH,
        "secrets": [SECRET],
        "allow_private_network": True,
        "timeout": 5,
    }
    options.update(overrides)
    return WebhookNotifier(**options)  # type: ignore[arg-type]


@pytest.fixture
async def notifier(receiver: Receiver) -> AsyncIterator[WebhookNotifier]:
    webhook = _notifier(receiver, clock=lambda: NOW)
    yield webhook
    await webhook.aclose()


def _assert_no_leak(exc: BaseException, receiver: Receiver) -> None:
    text = str(exc)
    assert "destination 'crm'" in text
    for secret in (receiver.url, PATH, "tok-9f8e7d6c", "127.0.0.1", SECRET, SECRET[6:]):
        assert secret not in text


async def test_delivers_the_exact_body_signed_per_standard_webhooks(receiver: Receiver) -> None:
    notifier = _notifier(receiver, secrets=[SECRET, OLD_SECRET])
    assert notifier.max_batch == 1
    try:
        await notifier.send([EVENT])
    finally:
        await notifier.aclose()
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == PATH
    assert request.body == EVENT.body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == EVENT.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["user-agent"].startswith("seqwatch/")
    for secret in (SECRET, OLD_SECRET):  # either side of a rotation verifies
        document = Webhook(secret).verify(request.body, request.headers)
        assert document["data"]["id"] == EVENT.id


async def test_timestamp_comes_from_the_clock(
    receiver: Receiver, notifier: WebhookNotifier
) -> None:
    await notifier.send([EVENT])
    assert receiver.requests[0].headers["webhook-timestamp"] == "1700000000"


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_success(
    receiver: Receiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.reply(Canned(status=status))
    await notifier.send([EVENT])
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed_and_permanent(
    receiver: Receiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.reply(Canned(status=status, headers=(("Location", receiver.url + "/elsewhere"),)))
    with pytest.raises(
        DeliveryPermanent, match=f"HTTP {status}; redirects are not followed"
    ) as info:
        await notifier.send([EVENT])
    assert [r.path for r in receiver.requests] == [PATH]
    _assert_no_leak(info.value, receiver)


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
async def test_retriable_statuses(
    receiver: Receiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.reply(Canned(status=status, body=b"upstream trouble at " + PATH.encode()))
    with pytest.raises(DeliveryRetriable) as info:
        await notifier.send([EVENT])
    assert str(info.value) == f"destination 'crm': HTTP {status}"
    assert info.value.retry_after is None
    _assert_no_leak(info.value, receiver)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_are_permanent(
    receiver: Receiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.reply(Canned(status=status))
    with pytest.raises(DeliveryPermanent) as info:
        await notifier.send([EVENT])
    assert str(info.value) == f"destination 'crm': HTTP {status}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("999999", 86_400.0),
        (formatdate(NOW + 120, usegmt=True), 120.0),
        (formatdate(NOW - 120, usegmt=True), 0.0),
        ("soon", None),
        ("-5", None),
    ],
)
async def test_retry_after_is_honoured_and_clamped(
    receiver: Receiver, notifier: WebhookNotifier, value: str, expected: float | None
) -> None:
    receiver.reply(Canned(status=429, headers=(("Retry-After", value),)))
    with pytest.raises(DeliveryRetriable) as info:
        await notifier.send([EVENT])
    assert info.value.retry_after == expected


async def test_retry_after_on_503(receiver: Receiver, notifier: WebhookNotifier) -> None:
    receiver.reply(Canned(status=503, headers=(("Retry-After", "7"),)))
    with pytest.raises(DeliveryRetriable) as info:
        await notifier.send([EVENT])
    assert info.value.retry_after == 7.0


async def test_timeout_is_retriable(receiver: Receiver) -> None:
    receiver.reply(Canned(hold=True))
    notifier = _notifier(receiver, timeout=0.2)
    try:
        with pytest.raises(DeliveryRetriable, match="timed out") as info:
            await notifier.send([EVENT])
    finally:
        receiver.release.set()
        await notifier.aclose()
    _assert_no_leak(info.value, receiver)


async def test_connection_refused_is_retriable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = WebhookNotifier(
        name="crm",
        url=f"http://127.0.0.1:{port}{PATH}",
        secrets=[SECRET],
        allow_private_network=True,
    )
    try:
        with pytest.raises(DeliveryRetriable, match=r"request failed \(ConnectError\)") as info:
            await notifier.send([EVENT])
    finally:
        await notifier.aclose()
    assert str(port) not in str(info.value)
    assert PATH not in str(info.value)


async def test_private_target_refused_by_default(receiver: Receiver) -> None:
    notifier = _notifier(receiver, allow_private_network=False)
    try:
        with pytest.raises(DeliveryPermanent) as info:
            await notifier.send([EVENT])
    finally:
        await notifier.aclose()
    assert str(info.value) == (
        "destination 'crm': target address refused (private network); "
        "set allow_private_network = true to allow"
    )
    assert receiver.requests == []


async def test_errors_never_chain_the_httpx_exception(receiver: Receiver) -> None:
    receiver.reply(Canned(hold=True))
    notifier = _notifier(receiver, timeout=0.2)
    try:
        with pytest.raises(DeliveryError) as info:
            await notifier.send([EVENT])
    finally:
        receiver.release.set()
        await notifier.aclose()
    # `from None`: a traceback printer would otherwise show the httpx message and its URL.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"secrets": []}, "secret is required"),
        ({"secrets": ["tok-9f8e7d6c"]}, "must start with 'whsec_'"),
        ({"secrets": ["whsec_tok-9f8e7d6c"]}, "not valid base64"),
        ({"url": "file:///etc/tok-9f8e7d6c"}, "absolute http"),
        ({"url": "http://[tok-9f8e7d6c/"}, "not a valid URL"),
        ({"url": "http://tok-9f8e7d6c:99999/"}, "not a valid URL"),
        ({"url": "http://tok 9f8e7d6c.example/"}, "not a valid URL"),
        ({"url": "/relative/tok-9f8e7d6c"}, "absolute http"),
    ],
)
def test_bad_configuration_is_a_config_error_without_the_values(
    receiver: Receiver, overrides: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _notifier(receiver, **overrides)
    assert "tok-9f8e7d6c" not in str(info.value)
    assert "destination 'crm'" in str(info.value)


async def test_repr_hides_url_and_secret(notifier: WebhookNotifier) -> None:
    assert repr(notifier) == "WebhookNotifier(name='crm')"
