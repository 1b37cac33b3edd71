"""Signed Standard Webhooks delivery, and the HTTP outcome rules Slack shares.

Outcomes (SPEC §6): 2xx delivered; 408/409/425/429/5xx, timeouts and connection errors are
retried (honouring Retry-After); redirects and other 4xx are permanent. Messages name the
destination and never the URL or the secret (aiohttp messages carry the URL: not passed on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from notifiers.base import OutboundEvent
from notifiers.netguard import TargetRefused, guarded_client
from notifiers.signing import parse_secret, signature_header
from worker.errors import ConfigError, DeliveryPermanent, DeliveryRetriable

if TYPE_CHECKING:
    from notifiers.netguard import GuardedClient

RETRIABLE_STATUSES = frozenset({408, 409, 425, 429})
MAX_RETRY_AFTER = 86_400.0
_BODY_PEEK = 1024  # enough for an error code; a hostile peer cannot make us buffer more


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int
    retry_after: str | None
    body: bytes  # at most _BODY_PEEK bytes


def check_url(url: str, *, destination: str) -> str:
    """Reject a URL that is not absolute http(s), without quoting it (it may be a secret)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port out of range
        host = httpx.URL(url).host
    except (ValueError, TypeError, httpx.InvalidURL):
        raise ConfigError(f"destination {destination!r}: url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"destination {destination!r}: url must be an absolute http(s) URL")
    if "%" in host or any(ch.isspace() for ch in url):  # httpx percent-quotes a bad host
        raise ConfigError(f"destination {destination!r}: url is not a valid URL")
    return url


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), clamped."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000" dates are UTC by RFC 9110
            return None
        seconds = moment.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _failure_kind(exc: Exception) -> str:
    """A stable name for a transport failure; aiohttp's own messages carry the URL."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "RemoteProtocolError"
    return type(exc).__name__


async def post_once(
    client: GuardedClient,
    *,
    destination: str,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
) -> Reply:
    """One POST; transport failures become Delivery errors; reads only a peek of the body."""
    import aiohttp  # here, not at import: commands that send nothing never load it

    try:
        async with client.post(url, data=content, headers=headers) as response:
            body = b""
            while len(body) < _BODY_PEEK:
                chunk = await response.content.read(_BODY_PEEK - len(body))
                if not chunk:
                    break
                body += chunk
            return Reply(
                status=response.status,
                retry_after=response.headers.get("retry-after"),
                body=body,
            )
    except TargetRefused:
        raise DeliveryPermanent(
            f"destination {destination!r}: target address refused (private network); "
            "set allow_private_network = true to allow"
        ) from None
    except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
        raise DeliveryRetriable(
            f"destination {destination!r}: timed out ({type(exc).__name__})"
        ) from None
    except aiohttp.ClientError as exc:
        raise DeliveryRetriable(
            f"destination {destination!r}: request failed ({_failure_kind(exc)})"
        ) from None


def check_reply(reply: Reply, *, destination: str, now: float, detail: str = "") -> None:
    """Return on 2xx; otherwise raise the Delivery error the status calls for."""
    status = reply.status
    if 200 <= status < 300:
        return
    suffix = f" ({detail})" if detail else ""
    message = f"destination {destination!r}: HTTP {status}{suffix}"
    if status in RETRIABLE_STATUSES or 500 <= status < 600:
        raise DeliveryRetriable(message, retry_after=parse_retry_after(reply.retry_after, now=now))
    if 300 <= status < 400:
        raise DeliveryPermanent(f"{message}; redirects are not followed")
    raise DeliveryPermanent(message)


class WebhookNotifier:
    """POSTs each event document, signed, to one URL; one event per request."""

    __slots__ = ("_client", "_clock", "_keys", "_name", "_url")

    def __init__(
        self,
        *,
        name: str,
        url: str,
        secrets: Sequence[str],
        allow_private_network: bool,
        timeout: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secrets:
            raise ConfigError(f"destination {name!r}: secret is required for webhooks")
        keys: list[bytes] = []
        for secret in secrets:
            try:
                keys.append(parse_secret(secret))
            except ValueError as exc:
                raise ConfigError(f"destination {name!r}: secret: {exc}") from None
        self._name = name
        self._url = check_url(url, destination=name)
        self._keys = tuple(keys)
        self._clock = clock
        self._client = guarded_client(allow_private_network=allow_private_network, timeout=timeout)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self._name!r})"

    @property
    def max_batch(self) -> int:
        return 1

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        for event in events:
            timestamp = int(self._clock())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": event.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(
                    self._keys, msg_id=event.id, timestamp=timestamp, body=event.body
                ),
            }
            reply = await post_once(
                self._client,
                destination=self._name,
                url=self._url,
                content=event.body,
                headers=headers,
            )
            check_reply(reply, destination=self._name, now=self._clock())

    async def aclose(self) -> None:
        await self._client.aclose()
