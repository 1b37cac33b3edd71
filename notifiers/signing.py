"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def parse_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret. Errors never quote the secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("webhook secret must start with 'whsec_'")
    encoded = secret[len(SECRET_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)  # some issuers drop the padding
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the decoder's own message may quote part of the secret.
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(*, key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `body` sent as message `msg_id` at `timestamp`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: Sequence[bytes], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, so secrets can be rotated."""
    return " ".join(sign(key=k, msg_id=msg_id, timestamp=timestamp, body=body) for k in keys)


def verify(
    *, key: bytes, headers: Mapping[str, str], body: bytes, now: int, tolerance: int = 300
) -> bool:
    """True when the headers carry a fresh `v1` signature of `body` made with `key`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (msg_id and stamp.isascii() and stamp.isdigit() and signatures):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(key=key, msg_id=msg_id, timestamp=timestamp, body=body).encode()
    # Check every candidate so the time taken does not depend on which one matched.
    matched = False
    for candidate in signatures.split():
        if candidate.startswith("v1,"):
            matched |= hmac.compare_digest(expected, candidate.encode())
    return matched
