"""Slack incoming-webhook delivery: Block Kit messages, bursts folded into one digest.

Limits honoured (api.slack.com/reference/block-kit): at most 50 blocks, section text at most
3000 characters, header text at most 150. The webhook URL is a secret: never in messages.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from notifiers.base import OutboundEvent, Pacer
from notifiers.describe import describe
from notifiers.netguard import guarded_client
from notifiers.webhook import check_reply, check_url, post_once
from worker.errors import DeliveryPermanent

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
FALLBACK_LIMIT = 500
LINES_CAP = 40  # header + counts + lines + context stays under Slack's 50 blocks

_LABELS: dict[str, tuple[str, str]] = {
    "enrollment.enrolled": (":inbox_tray:", "Enrolled"),
    "enrollment.step_advanced": (":arrow_forward:", "Step advanced"),
    "enrollment.replied": (":speech_balloon:", "Replied"),
    "enrollment.bounced": (":warning:", "Bounced"),
    "enrollment.opted_out": (":no_entry_sign:", "Opted out"),
    "enrollment.paused": (":double_vertical_bar:", "Paused"),
    "enrollment.resumed": (":arrows_counterclockwise:", "Resumed"),
    "enrollment.finished": (":checkered_flag:", "Finished"),
    "enrollment.removed": (":wastebasket:", "Removed"),
    "enrollment.status_changed": (":twisted_rightwards_arrows:", "Status changed"),
}
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when cut, never inside an entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _type_of(document: Mapping[str, Any]) -> str:
    value = document.get("type")
    return value if isinstance(value, str) else "unknown"


def _source_of(document: Mapping[str, Any]) -> str:
    data = document.get("data")
    source = data.get("source") if isinstance(data, Mapping) else None
    return " ".join(source.split()) if isinstance(source, str) else ""


def _label(event_type: str) -> tuple[str, str]:
    return _LABELS.get(event_type, (":bell:", escape(clip(event_type, 100))))


def _line(document: Mapping[str, Any]) -> str:
    emoji, label = _label(_type_of(document))
    return clip(f"{emoji} *{label}* {escape(describe(document))}", SECTION_LIMIT)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def _counts(documents: Sequence[Mapping[str, Any]]) -> str:
    counted = Counter(_type_of(d) for d in documents).most_common()
    return " · ".join(f"*{_label(t)[1]}*: {n}" for t, n in counted)


def build_message(documents: Sequence[Mapping[str, Any]], *, max_lines: int) -> dict[str, Any]:
    """{"text": fallback, "blocks": [...]}: one section per event, or a digest for bursts."""
    total = len(documents)
    if total == 0:
        return {"text": "seqwatch: no events", "blocks": []}
    lines = min(max(max_lines, 1), LINES_CAP)
    if total == 1:
        fallback = escape(describe(documents[0]))
    else:
        fallback = f"seqwatch: {total} events ({_counts(documents).replace('*', '')})"
    if total <= lines:
        blocks = [_section(_line(d)) for d in documents]
        return {"text": clip(fallback, FALLBACK_LIMIT), "blocks": blocks}
    title = f"seqwatch: {total} events"
    sources = {_source_of(d) for d in documents}
    if len(sources) == 1 and (only := sources.pop()):
        title += f" from {only}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_LIMIT)}},
        _section(_counts(documents)),
        *(_section(_line(d)) for d in documents[:lines]),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"+{total - lines} more"}]},
    ]
    return {"text": clip(fallback, FALLBACK_LIMIT), "blocks": blocks}


def slack_error_code(body: bytes) -> str:
    """Slack's plain-text error code ("no_service", "invalid_token"...), or "" if not one."""
    text = body.decode("utf-8", "replace").strip()
    return text if _ERROR_CODE.fullmatch(text) else ""


class SlackNotifier:
    """Posts one Block Kit message per batch to a Slack incoming webhook."""

    __slots__ = (
        "_client", "_clock", "_last_post", "_max_lines", "_min_interval", "_monotonic", "_name",
        "_pacer",
        "_sleep", "_url",
    )  # fmt: skip

    def __init__(
        self,
        *,
        name: str,
        url: str,
        allow_private_network: bool = False,
        timeout: float = 10,
        max_lines: int = 10,
        clock: Callable[[], float] = time.time,
        min_interval: float = 1.0,
        pacer: Pacer | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._name = name
        # Slack allows about one message per second per incoming webhook.
        self._min_interval = min_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._last_post: float | None = None
        self._pacer = pacer  # when given (shared by all workers), it replaces the local spacing
        self._url = check_url(url, destination=name)
        self._max_lines = max_lines
        self._clock = clock
        self._client = guarded_client(allow_private_network=allow_private_network, timeout=timeout)

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self._name!r})"

    @property
    def max_batch(self) -> int:
        return 50

    def _document(self, event: OutboundEvent) -> Mapping[str, Any]:
        try:
            document = orjson.loads(event.body)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise DeliveryPermanent(
                f"destination {self._name!r}: event {event.id!r} is not a JSON object"
            )
        return document

    async def send(self, events: Sequence[OutboundEvent]) -> None:
        if not events:
            return
        message = build_message([self._document(e) for e in events], max_lines=self._max_lines)
        if self._pacer is not None:
            await self._pacer.acquire()
        elif self._last_post is not None:
            wait = self._last_post + self._min_interval - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
        self._last_post = self._monotonic()
        reply = await post_once(
            self._client,
            destination=self._name,
            url=self._url,
            content=orjson.dumps(message),
            headers={"Content-Type": "application/json"},
        )
        check_reply(
            reply, destination=self._name, now=self._clock(), detail=slack_error_code(reply.body)
        )

    async def aclose(self) -> None:
        await self._client.aclose()
