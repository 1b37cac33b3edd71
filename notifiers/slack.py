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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from notifiers.base import OutboundEvent, Pacer
from notifiers.describe import Facts, describe, facts, step_of
from notifiers.netguard import guarded_client
from notifiers.webhook import check_reply, check_url, post_once
from worker.errors import DeliveryPermanent
from worker.wording import plural

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
FALLBACK_LIMIT = 500
LINES_CAP = 40  # header + counts + lines + context stays under Slack's 50 blocks
DIGEST_MAX_EVENTS = 100  # one message per burst; more than that is several digests

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
    "source.failing": (":rotating_light:", "Source failing"),
    "source.recovered": (":white_check_mark:", "Source recovered"),
    "source.removals_held": (":raised_hand:", "Removals held"),
    "seqwatch.test": (":test_tube:", "Test event"),
}
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_ZWSP = "\u200b"
# Slack has no escape for its formatting characters; a zero-width space on each side makes
# one intraword, where Slack does not format, and copy/paste keeps the character.
_FORMATTING = str.maketrans({c: f"{_ZWSP}{c}{_ZWSP}" for c in "*_~`"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceDisplay:
    """How a source is shown to people: its `label`, and `record_url` to link a contact."""

    label: str | None = None
    record_url: str | None = None


def escape(text: str) -> str:
    """Slack mrkdwn: &, < and > as entities; *, _, ~ and ` neutralized (see _FORMATTING)."""
    entities = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return entities.translate(_FORMATTING)


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


def _label(event_type: str) -> tuple[str, str]:
    return _LABELS.get(event_type, (":bell:", escape(clip(event_type, 100))))


def _record_link(f: Facts, display: SourceDisplay) -> str | None:
    """The record's URL from the source's template, each value URL-quoted; None if unknown."""
    if display.record_url is None:
        return None
    values = {
        "sequence_id": f.sequence_id, "contact_id": f.contact_id,
        "enrollment_id": f.enrollment_id,
    }  # fmt: skip
    try:
        url = display.record_url.format_map(
            {k: quote(v, safe="") for k, v in values.items() if v is not None}
        )
    except (KeyError, ValueError, IndexError):
        return None  # the template needs a value this event does not have
    return url if not any(c in url for c in "|<> ") else None


def _when(moment: datetime | None) -> str | None:
    """Slack shows the reader's local time; the fallback is UTC."""
    if moment is None:
        return None
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _step(f: Facts) -> str | None:
    """'step 2 of 5' ('step 2' without a known total); a step advance 'step 1 → 2 of 5'."""
    if f.step is None:
        return None
    moved = f.event_type == "enrollment.step_advanced" and f.previous_step not in (None, f.step)
    return f"step {f'{f.previous_step} → ' if moved else ''}{step_of(f.step, f.steps_total)}"


def _enrollment_text(f: Facts, display: SourceDisplay, source: str) -> str:
    who = escape(f.who)
    link = _record_link(f, display)
    # A step advance names its steps once, in the context line where every step is shown.
    advanced = f.event_type == "enrollment.step_advanced" and f.step is not None
    first = [f"<{link}|{who}>" if link else f"*{who}*", "advanced" if advanced else escape(f.what)]
    details = [escape(x) for x in (f.email if f.contact_name else None, f.company) if x]
    context = [escape(f.sequence)]
    if (step := _step(f)) is not None:
        context.append(step)
    context.append(escape(source))
    line = " ".join(first) + (f" ({', '.join(details)})" if details else "")
    return line + "\n" + " · ".join(context)


def _health_text(f: Facts, source: str) -> str:
    line = f"*{escape(source)}* {escape(f.what)}"
    if f.failures and f.event_type == "source.failing":
        line += f" after {plural(f.failures, 'failed poll')} in a row"
    if f.error:
        line += f"\n> {escape(f.error)}"
    return line


def _section_text(document: Mapping[str, Any], displays: Mapping[str, SourceDisplay]) -> str:
    f = facts(document)
    display = displays.get(f.source or "", SourceDisplay())
    source = display.label or f.source or "unknown source"
    emoji, label = _label(_type_of(document))
    match f.kind:
        case "enrollment":
            body = _enrollment_text(f, display, source)
        case "health":
            body = _health_text(f, source)
        case "test":
            body = (
                f"seqwatch check --send-test reached destination "
                f"*{escape(f.destination or 'unknown')}*. Consumers can ignore this event."
            )
        case _:
            body = escape(describe(document, label=display.label))
    when = _when(f.detected_at)
    text = f"{emoji} *{label}* · {body}" + (f" · {when}" if when else "")
    return clip(text, SECTION_LIMIT)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def _counts(documents: Sequence[Mapping[str, Any]]) -> str:
    counted = Counter(_type_of(d) for d in documents).most_common()
    return " · ".join(f"*{_label(t)[1]}*: {n}" for t, n in counted)


def build_message(
    documents: Sequence[Mapping[str, Any]],
    *,
    max_lines: int,
    displays: Mapping[str, SourceDisplay] | None = None,
) -> dict[str, Any]:
    """{"text": fallback, "blocks": [...]}: one section per event, or a digest for bursts."""
    displays = displays or {}
    total = len(documents)
    if total == 0:
        return {"text": "seqwatch: no events", "blocks": []}
    lines = min(max(max_lines, 1), LINES_CAP)
    if total == 1:
        source = facts(documents[0]).source or ""
        fallback = describe(documents[0], label=displays.get(source, SourceDisplay()).label)
    else:
        plain = " · ".join(f"{_label(t)[1]}: {n}" for t, n in
                           Counter(_type_of(d) for d in documents).most_common())  # fmt: skip
        fallback = f"seqwatch: {total} events ({plain})"
    fallback = clip(escape(fallback).replace(_ZWSP, ""), FALLBACK_LIMIT)
    if total <= lines:
        blocks = [_section(_section_text(d, displays)) for d in documents]
        return {"text": fallback, "blocks": blocks}
    title = f"seqwatch: {total} events"
    sources = {facts(d).source or "" for d in documents}
    if len(sources) == 1 and (only := sources.pop()):
        title += f" from {displays.get(only, SourceDisplay()).label or only}"
    else:
        title += f" from {len(sources)} sources"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_LIMIT)}},
        _section(_counts(documents)),
        *(_section(_section_text(d, displays)) for d in documents[:lines]),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"+{total - lines} more"}]},
    ]
    return {"text": fallback, "blocks": blocks}


def slack_error_code(body: bytes) -> str:
    """Slack's plain-text error code ("no_service", "invalid_token"...), or "" if not one."""
    text = body.decode("utf-8", "replace").strip()
    return text if _ERROR_CODE.fullmatch(text) else ""


class SlackNotifier:
    """Posts one Block Kit message per batch to a Slack incoming webhook."""

    __slots__ = (
        "_client", "_clock", "_displays", "_last_post", "_max_lines", "_min_interval",
        "_monotonic", "_name", "_pacer", "_sleep", "_url",
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
        displays: Mapping[str, SourceDisplay] | None = None,
    ) -> None:
        self._name = name
        self._displays = dict(displays or {})
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
        return DIGEST_MAX_EVENTS

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
        message = build_message(
            [self._document(e) for e in events], max_lines=self._max_lines,
            displays=self._displays,
        )  # fmt: skip
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
