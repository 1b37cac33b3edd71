"""Standard Webhooks signing: the published test vector and interop with the reference lib."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from notifiers.signing import parse_secret, sign, signature_header, verify

# The example from the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + base64.b64encode(b"another-key-of-32-bytes-length!!").decode()
BODY = '{"type":"enrollment.replied","data":{"id":"evt_1","contact":{"name":"Zoë"}}}'.encode()


def _headers(keys: list[bytes], *, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys, msg_id=msg_id, timestamp=ts, body=body),
    }


def test_sign_matches_the_specification_vector() -> None:
    key = parse_secret(SPEC_SECRET)
    assert sign(key=key, msg_id=SPEC_ID, timestamp=SPEC_TS, body=SPEC_BODY) == SPEC_SIG


def test_parse_secret_accepts_unpadded_base64() -> None:
    raw = b"sixteen-byte-key!"  # 17 bytes: base64 needs padding
    unpadded = base64.b64encode(raw).decode().rstrip("=")
    assert parse_secret("whsec_" + unpadded) == raw


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not*base64!!", "whsec_c2VjcmV0@@@@"],
)
def test_parse_secret_rejects_without_quoting_the_secret(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret") as info:
        parse_secret(secret)
    payload = secret.removeprefix("whsec_")
    assert not payload or payload not in str(info.value)


def test_our_headers_verify_with_the_reference_library() -> None:
    now = int(time.time())
    headers = _headers([parse_secret(SPEC_SECRET)], msg_id="evt_1", ts=now, body=BODY)
    assert Webhook(SPEC_SECRET).verify(BODY, headers)["data"]["id"] == "evt_1"


def test_rotation_signs_with_every_key_and_either_secret_verifies() -> None:
    now = int(time.time())
    keys = [parse_secret(SPEC_SECRET), parse_secret(OTHER_SECRET)]
    headers = _headers(keys, msg_id="evt_2", ts=now, body=BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SPEC_SECRET, OTHER_SECRET):
        Webhook(secret).verify(BODY, headers)
        assert verify(key=parse_secret(secret), headers=headers, body=BODY, now=now)


def test_reference_library_rejects_a_wrong_secret() -> None:
    now = int(time.time())
    headers = _headers([parse_secret(OTHER_SECRET)], msg_id="evt_3", ts=now, body=BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(BODY, headers)


def test_we_verify_the_reference_library_signature() -> None:
    ts = 1_700_000_000
    reference = Webhook(SPEC_SECRET).sign(
        "evt_4", datetime.fromtimestamp(ts, tz=UTC), BODY.decode()
    )
    headers = {"Webhook-Id": "evt_4", "Webhook-Timestamp": str(ts), "Webhook-Signature": reference}
    assert verify(key=parse_secret(SPEC_SECRET), headers=headers, body=BODY, now=ts + 10)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"body": BODY + b" "}, False),
        ({"now": 1_700_000_000 + 301}, False),
        ({"now": 1_700_000_000 - 301}, False),
        ({"now": 1_700_000_000 + 300}, True),
        ({"webhook-id": "evt_other"}, False),
        ({"webhook-timestamp": "1700000001"}, False),
        ({"webhook-timestamp": "17e8"}, False),
        ({"webhook-signature": "v2,abc"}, False),
        ({"webhook-signature": ""}, False),
        ({"webhook-id": ""}, False),
    ],
)
def test_verify_rejects_tampering_and_stale_messages(
    change: dict[str, object], expected: bool
) -> None:
    ts = 1_700_000_000
    key = parse_secret(SPEC_SECRET)
    headers = _headers([key], msg_id="evt_5", ts=ts, body=BODY)
    body = BODY
    now = ts
    for name, value in change.items():
        if name == "body":
            assert isinstance(value, bytes)
            body = value
        elif name == "now":
            assert isinstance(value, int)
            now = value
        else:
            headers[name] = str(value)
    assert verify(key=key, headers=headers, body=body, now=now) is expected


def test_verify_accepts_when_any_signature_matches() -> None:
    ts = 1_700_000_000
    key = parse_secret(SPEC_SECRET)
    good = sign(key=key, msg_id="evt_6", timestamp=ts, body=BODY)
    headers = {
        "webhook-id": "evt_6",
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,AAAA v1a,{good[3:]} {good}",
    }
    assert verify(key=key, headers=headers, body=BODY, now=ts)
    assert not verify(key=parse_secret(OTHER_SECRET), headers=headers, body=BODY, now=ts)
