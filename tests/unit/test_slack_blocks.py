"""Slack message builder: Block Kit validity and limits, checked by slack_sdk's own models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block, HeaderBlock, SectionBlock

from notifiers.slack import build_message, clip, escape, slack_error_code
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import Event, EventType

ACTIVE = State(status=Status.ACTIVE, raw_status="Active", step=1)


def _doc(
    event_type: EventType = EventType.REPLIED,
    *,
    name: str = "John Doe",
    sequence: str = "Q4 outbound",
    source: str = "reply-emea",
    n: int = 0,
) -> dict[str, Any]:
    return Event(
        id=f"evt_{n}",
        type=event_type,
        source=source,
        provider="replyio",
        enrollment_id=f"100:{n}",
        sequence=SequenceRef(id="100", name=sequence),
        contact=Contact(id=str(n), name=name),
        previous=ACTIVE,
        current=ACTIVE,
        detected_at=datetime(2026, 11, 22, 13, 0, tzinfo=UTC),
    ).document()


def _valid_blocks(message: dict[str, Any]) -> list[Block]:
    """Parse with slack_sdk and run its validators; also check the message-level limits."""
    assert set(message) == {"text", "blocks"}
    assert 0 < len(message["text"]) <= 500
    assert len(message["blocks"]) <= 50
    blocks = Block.parse_all(message["blocks"])
    assert len(blocks) == len(message["blocks"])
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError on a limit violation
    return blocks


def test_one_event_is_one_section_with_a_readable_fallback() -> None:
    message = build_message([_doc()], max_lines=10)
    (block,) = _valid_blocks(message)
    assert isinstance(block, SectionBlock)
    assert block.text is not None
    assert block.text.type == "mrkdwn"
    assert block.text.text == (
        ":speech_balloon: *Replied* · *John Doe* replied\n"
        "Q4 outbound · step 1 · reply-emea · "
        "<!date^1795352400^{date_short_pretty} {time}|2026-11-22 13:00 UTC>"
    )
    assert message["text"] == "John Doe replied in Q4 outbound [reply-emea]"


def test_up_to_max_lines_events_get_one_section_each() -> None:
    docs = [_doc(n=i, name=f"Contact {i}") for i in range(10)]
    message = build_message(docs, max_lines=10)
    blocks = _valid_blocks(message)
    assert len(blocks) == 10
    assert all(isinstance(b, SectionBlock) for b in blocks)
    assert message["text"] == "seqwatch: 10 events (Replied: 10)"


def test_a_burst_becomes_a_digest() -> None:
    docs = [_doc(EventType.REPLIED, n=i) for i in range(30)] + [
        _doc(EventType.FINISHED, n=i) for i in range(30, 50)
    ]
    message = build_message(docs, max_lines=10)
    blocks = _valid_blocks(message)
    header, counts, *lines, context = blocks
    assert isinstance(header, HeaderBlock)
    assert header.text is not None
    assert header.text.text == "seqwatch: 50 events from reply-emea"
    assert isinstance(counts, SectionBlock)
    assert counts.text is not None
    assert counts.text.text == "*Replied*: 30 · *Finished*: 20"
    assert len(lines) == 10
    assert context.to_dict()["elements"][0]["text"] == "+40 more"
    assert message["text"] == "seqwatch: 50 events (Replied: 30 · Finished: 20)"


def test_digest_header_counts_sources_when_mixed() -> None:
    docs = [_doc(n=i, source="a" if i % 2 else "b") for i in range(12)]
    header = _valid_blocks(build_message(docs, max_lines=10))[0]
    assert isinstance(header, HeaderBlock)
    assert header.text is not None
    assert header.text.text == "seqwatch: 12 events from 2 sources"


def test_huge_names_stay_within_every_limit() -> None:
    huge = "N" * 20_000
    docs = [_doc(name=huge, sequence=huge, source="s" * 5_000, n=i) for i in range(50)]
    for max_lines in (1, 10, 49, 50, 1000):
        message = build_message(docs, max_lines=max_lines)
        blocks = _valid_blocks(message)
        header = blocks[0]
        assert isinstance(header, HeaderBlock)
        assert header.text is not None
        assert header.text.text.endswith("…")
    single = build_message([_doc(name=huge, sequence=huge)], max_lines=10)
    assert _valid_blocks(single)
    assert "…" in single["text"]
    assert len(single["text"]) <= 500


def test_unknown_event_types_are_counted_under_their_own_name() -> None:
    weird = {"type": "enrollment.<b>new</b>", "data": {"source": "x"}}
    message = build_message([weird] * 12, max_lines=10)
    counts = _valid_blocks(message)[1]
    assert isinstance(counts, SectionBlock)
    assert counts.text is not None
    assert counts.text.text == "*enrollment.&lt;b&gt;new&lt;/b&gt;*: 12"


def test_mrkdwn_control_characters_are_escaped() -> None:
    doc = _doc(name="<!channel> & <https://evil.example|click>", sequence="A>B")
    (block,) = _valid_blocks(build_message([doc], max_lines=10))
    assert isinstance(block, SectionBlock)
    assert block.text is not None
    text = block.text.text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "A&gt;B" in text
    # The only markup left is ours: the bold label and Slack's date token.
    ours = re.sub(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>]*>$", "", text)
    assert "<" not in ours
    assert ">" not in ours


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 5, "abcd…"),
        ("ab&amp;cd", 6, "ab…"),  # never cut inside an entity
        ("ab&amp;cd", 8, "ab&amp;…"),
    ],
)
def test_clip(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected
    assert len(clip(text, limit)) <= limit


def test_escape() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    zw = "\u200b"
    assert escape("*boss* _x_ ~y~ `z`") == "".join(
        f"{zw}{c}{zw}" if c in "*_~`" else c for c in "*boss* _x_ ~y~ `z`"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"no_service", "no_service"),
        (b"invalid_token\n", "invalid_token"),
        (b"channel_is_archived", "channel_is_archived"),
        (b"<html>https://hooks.slack.com/services/T/B/XYZ</html>", ""),
        (b"x" * 500, ""),
        (b"", ""),
    ],
)
def test_slack_error_code_is_short_and_sanitized(body: bytes, code: str) -> None:
    assert slack_error_code(body) == code


def test_no_events_builds_an_empty_message() -> None:
    assert build_message([], max_lines=10) == {"text": "seqwatch: no events", "blocks": []}
