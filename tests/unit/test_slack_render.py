"""Representative Slack messages for every event type, as a sales team reads them.

Each message is parsed and validated by slack_sdk's Block Kit models; the texts are asserted
in full where a person would notice a difference.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from slack_sdk.models.blocks import Block, HeaderBlock, SectionBlock

from notifiers.describe import describe
from notifiers.slack import SourceDisplay, build_message
from worker.app.commands import check_event
from worker.enrollment import Contact, SequenceRef, State, Status
from worker.events import Event, EventType, HealthType
from worker.ops.health import HealthEvent

AT = datetime(2026, 11, 22, 13, 0, 5, tzinfo=UTC)
DATE = "<!date^1795352405^{date_short_pretty} {time}|2026-11-22 13:00 UTC>"
DISPLAYS = {
    "reply-emea": SourceDisplay(
        label="Reply EMEA",
        record_url="https://app.example.com/sequences/{sequence_id}/contacts/{contact_id}",
    )
}
ACTIVE = State(status=Status.ACTIVE, raw_status="Active", step=1, opted_out=False)


def enrollment(event_type: EventType, **changes: Any) -> dict[str, Any]:
    previous = changes.pop("previous", ACTIVE)
    current = changes.pop("current", State(status=Status.ACTIVE, raw_status="Active", step=2))
    sequence = changes.pop("sequence", SequenceRef(id="100", name="Q4 outbound"))
    contact = changes.pop(
        "contact",
        Contact(id="12345", email="john.doe@company.com", name="John Doe",
                company="Tech Solutions Inc"),
    )  # fmt: skip
    return Event(
        id="evt_" + "1" * 32,
        type=event_type,
        source=changes.pop("source", "reply-emea"),
        provider="replyio",
        enrollment_id="100:12345",
        sequence=sequence,
        contact=contact,
        previous=previous,
        current=current,
        detected_at=AT,
    ).document()


def section_text(message: dict[str, Any], index: int = 0) -> str:
    assert len(message["blocks"]) <= 50
    assert 0 < len(message["text"]) <= 500
    blocks = Block.parse_all(message["blocks"])
    for block in blocks:
        block.validate_json()  # slack_sdk's own limits (text lengths, block counts)
    block = blocks[index]
    assert isinstance(block, SectionBlock)
    assert block.text is not None
    return str(block.text.text)


def test_an_enrollment_event_names_links_and_places_the_contact() -> None:
    message = build_message([enrollment(EventType.REPLIED)], max_lines=10, displays=DISPLAYS)
    assert section_text(message) == (
        ":speech_balloon: *Replied* · "
        "<https://app.example.com/sequences/100/contacts/12345|John Doe> replied "
        "(john.doe@company.com, Tech Solutions Inc)\n"
        f"Q4 outbound · step 2 · Reply EMEA · {DATE}"
    )
    assert message["text"] == "John Doe replied in Q4 outbound [Reply EMEA]"


@pytest.mark.parametrize(
    ("event_type", "label", "what"),
    [
        (EventType.ENROLLED, ":inbox_tray: *Enrolled*", "enrolled"),
        (EventType.STEP_ADVANCED, ":arrow_forward: *Step advanced*", "advanced"),
        (EventType.BOUNCED, ":warning: *Bounced*", "bounced"),
        (EventType.OPTED_OUT, ":no_entry_sign: *Opted out*", "opted out"),
        (EventType.PAUSED, ":double_vertical_bar: *Paused*", "was paused"),
        (EventType.RESUMED, ":arrows_counterclockwise: *Resumed*", "resumed"),
        (EventType.FINISHED, ":checkered_flag: *Finished*", "finished"),
        (EventType.REMOVED, ":wastebasket: *Removed*", "was removed"),
        (EventType.STATUS_CHANGED, ":twisted_rightwards_arrows: *Status changed*",
         "status changed active -&gt; active"),
    ],
)  # fmt: skip
def test_every_enrollment_type_renders(event_type: EventType, label: str, what: str) -> None:
    text = section_text(build_message([enrollment(event_type)], max_lines=10))
    assert text.startswith(f"{label} · *John Doe* {what} (john.doe@company.com, ")
    assert text.endswith(f" · reply-emea · {DATE}")


FIVE_STEPS = SequenceRef(id="100", name="Q4 outbound", steps_total=5)


def test_the_step_reads_2_of_5_where_the_sequence_says_how_many() -> None:
    message = build_message(
        [enrollment(EventType.REPLIED, sequence=FIVE_STEPS)], max_lines=10, displays=DISPLAYS
    )
    assert section_text(message).endswith(f"\nQ4 outbound · step 2 of 5 · Reply EMEA · {DATE}")
    # Only the step where the total is unknown (Reply.io), no step where the step is (Unify).
    unknown_total = section_text(build_message([enrollment(EventType.REPLIED)], max_lines=10))
    assert unknown_total.endswith(f"\nQ4 outbound · step 2 · reply-emea · {DATE}")
    no_step = State(status=Status.ACTIVE, raw_status="IN_PROGRESS", replied=True)
    unify = enrollment(EventType.REPLIED, previous=None, current=no_step)
    assert section_text(build_message([unify], max_lines=10)).endswith(
        f"\nQ4 outbound · reply-emea · {DATE}"
    )


def test_a_step_advance_reads_from_and_to_with_the_total() -> None:
    doc = enrollment(EventType.STEP_ADVANCED, sequence=FIVE_STEPS)
    message = build_message([doc], max_lines=10, displays=DISPLAYS)
    assert section_text(message) == (
        ":arrow_forward: *Step advanced* · "
        "<https://app.example.com/sequences/100/contacts/12345|John Doe> advanced "
        "(john.doe@company.com, Tech Solutions Inc)\n"
        f"Q4 outbound · step 1 → 2 of 5 · Reply EMEA · {DATE}"
    )
    # The plain-text fallback (and the console line) say the same in words.
    assert (
        message["text"] == "John Doe advanced to step 2 of 5 (from 1) in Q4 outbound [Reply EMEA]"
    )
    assert describe(doc) == "John Doe advanced to step 2 of 5 (from 1) in Q4 outbound [reply-emea]"


@pytest.mark.parametrize(
    ("previous_step", "step", "total", "shown", "said"),
    [
        (1, 3, None, "step 1 → 3", "advanced to step 3 (from 1)"),
        (None, 2, 5, "step 2 of 5", "advanced to step 2 of 5"),
        (5, 6, 5, "step 5 → 6", "advanced to step 6 (from 5)"),  # a total behind the step
        (1, None, 5, None, "advanced a step"),
    ],
)  # fmt: skip
def test_a_step_advance_shows_only_what_is_known(
    previous_step: int | None, step: int | None, total: int | None, shown: str | None, said: str
) -> None:
    doc = enrollment(
        EventType.STEP_ADVANCED,
        previous=State(status=Status.ACTIVE, raw_status="Active", step=previous_step),
        current=State(status=Status.ACTIVE, raw_status="Active", step=step),
        sequence=SequenceRef(id="100", name="Q4 outbound", steps_total=total),
    )
    text = section_text(build_message([doc], max_lines=10))
    first, context = text.split("\n")
    assert first.startswith(":arrow_forward: *Step advanced* · *John Doe* ")
    assert ("advanced a step" in first) is (step is None)
    assert context == " · ".join(x for x in ("Q4 outbound", shown, "reply-emea", DATE) if x)
    assert describe(doc) == f"John Doe {said} in Q4 outbound [reply-emea]"


def test_step_totals_from_a_document_are_read_tolerantly() -> None:
    for odd in ("5", 0, -1, True, None):
        doc = enrollment(EventType.REPLIED)
        doc["data"]["sequence"]["steps_total"] = odd
        assert section_text(build_message([doc], max_lines=10)).endswith(
            f"\nQ4 outbound · step 2 · reply-emea · {DATE}"
        ), odd


def test_an_unknown_contact_without_a_link_template_reads_plainly() -> None:
    doc = enrollment(EventType.REMOVED, contact=Contact(id="7"), current=None)
    text = section_text(build_message([doc], max_lines=10, displays=DISPLAYS))
    # record_url needs {contact_id} and has it: the id-only contact is still linked.
    assert (
        "<https://app.example.com/sequences/100/contacts/7|contact 7> was removed (no longer"
        in text
    )


def test_health_notices_carry_the_error_and_the_failure_count() -> None:
    failing = HealthEvent(
        id="evt_" + "2" * 32, type=HealthType.FAILING, source="reply-emea", provider="replyio",
        consecutive_failures=3, error="source 'reply-emea': HTTP 500 from the provider",
        detected_at=AT,
    ).document()  # fmt: skip
    text = section_text(build_message([failing], max_lines=10, displays=DISPLAYS))
    assert text == (
        ":rotating_light: *Source failing* · *Reply EMEA* is failing after 3 failed polls in a "
        f"row\n> source 'reply-emea': HTTP 500 from the provider · {DATE}"
    )
    recovered = dict(failing, type="source.recovered")
    recovered["data"] = dict(failing["data"], consecutive_failures=0, error=None)
    text = section_text(build_message([recovered], max_lines=10, displays=DISPLAYS))
    assert text == f":white_check_mark: *Source recovered* · *Reply EMEA* recovered · {DATE}"
    assert describe(failing) == (
        "source reply-emea is failing after 3 failed polls in a row: "
        "source 'reply-emea': HTTP 500 from the provider"
    )


def test_the_send_test_event_says_what_it_is() -> None:
    doc = orjson.loads(check_event("sales-slack", now=AT).body)
    text = section_text(build_message([doc], max_lines=10))
    assert text == (
        ":test_tube: *Test event* · seqwatch check --send-test reached destination "
        f"*sales-slack*. Consumers can ignore this event. · {DATE}"
    )


def test_names_cannot_format_mention_or_link() -> None:
    hostile = Contact(id="1", name="*Boss* _x_ ~y~ <!here> & co", email="a_b@c.example")
    text = section_text(
        build_message([enrollment(EventType.REPLIED, contact=hostile)], max_lines=10)
    )
    zw = "\u200b"
    assert f"{zw}*{zw}Boss{zw}*{zw} {zw}_{zw}x{zw}_{zw}" in text
    assert "&lt;!here&gt; &amp; co" in text
    assert f"a{zw}_{zw}b@c.example" in text


def test_a_burst_across_sources_is_one_digest_within_limits() -> None:
    docs = [enrollment(EventType.STEP_ADVANCED, sequence=FIVE_STEPS) for _ in range(30)]
    docs += [enrollment(EventType.REPLIED, source="unify-main") for _ in range(25)]
    message = build_message(docs, max_lines=10, displays=DISPLAYS)
    header, counts, *lines, more = Block.parse_all(message["blocks"])
    assert isinstance(header, HeaderBlock)
    assert header.text is not None
    assert header.text.text == "seqwatch: 55 events from 2 sources"
    assert isinstance(counts, SectionBlock)
    assert counts.text is not None
    assert counts.text.text == "*Step advanced*: 30 · *Replied*: 25"
    assert len(lines) == 10
    assert all(isinstance(line, SectionBlock) for line in lines)
    assert "\nQ4 outbound · step 1 → 2 of 5 · Reply EMEA · " in section_text(message, 2)
    assert more.to_dict()["elements"][0]["text"] == "+45 more"
    assert message["text"] == "seqwatch: 55 events (Step advanced: 30 · Replied: 25)"


def _readme_burst() -> list[dict[str, Any]]:
    """The five events of the README's verbatim Slack sample."""

    def event(n: int, event_type: EventType, source: str, provider: str, **fields: Any) -> Any:
        return Event(
            id=f"evt_{n:032x}", type=event_type, source=source, provider=provider,
            detected_at=AT + timedelta(seconds=1 + n), **fields,
        ).document()  # fmt: skip

    def reply(status: Status = Status.ACTIVE, **flags: Any) -> State:
        return State(status=status, raw_status="Active", step=2, opted_out=False, **flags)

    def unify(**flags: Any) -> State:
        return State(status=Status.ACTIVE, raw_status="IN_PROGRESS", **flags)

    def whippy(step: int) -> State:
        return State(status=Status.ACTIVE, raw_status="active", step=step, step_id=f"s{step}")

    return [
        event(0, EventType.REPLIED, "reply-emea", "replyio", enrollment_id="100:12345",
              sequence=SequenceRef(id="100", name="Q4 outbound"),
              contact=Contact(id="12345", email="john.doe@company.com", name="John Doe",
                              company="Tech Solutions Inc"),
              previous=reply(), current=reply(replied=True)),
        event(1, EventType.STEP_ADVANCED, "whippy-sms", "whippy", enrollment_id="7f3e:c-0042",
              sequence=SequenceRef(id="7f3e", name="Spring promo", steps_total=4),
              contact=Contact(id="c-0042", name="Ana Reyes", phone="+14155550142"),
              previous=whippy(1), current=whippy(2)),
        event(2, EventType.BOUNCED, "unify-main", "unify", enrollment_id="enr_1",
              sequence=SequenceRef(id="s-9", name="Enterprise expansion"),
              contact=Contact(id="p-3", email="omar@stark.io", name="Omar Haddad"),
              previous=unify(bounced=False), current=unify(bounced=True)),
        event(3, EventType.OPTED_OUT, "reply-emea", "replyio", enrollment_id="200:22002",
              sequence=SequenceRef(id="200", name="Webinar follow-up"),
              contact=Contact(id="22002", email="kim@hooli.com", name="Kim *Park*",
                              company="Hooli"),
              previous=reply(), current=State(status=Status.ACTIVE, raw_status="Active", step=2,
                                              opted_out=True)),
        HealthEvent(
            id="evt_" + "f" * 32, type=HealthType.FAILING, source="unify-main", provider="unify",
            consecutive_failures=3, detected_at=AT + timedelta(seconds=9),
            error="source 'unify-main': HTTP 503 from the provider (after 5 attempts)",
        ).document(),
    ]  # fmt: skip


def test_the_readme_slack_sample_is_what_build_message_renders() -> None:
    displays = {
        **DISPLAYS,
        "unify-main": SourceDisplay(label="Unify"),
        "whippy-sms": SourceDisplay(label="Whippy SMS"),
    }
    message = build_message(_readme_burst(), max_lines=10, displays=displays)
    for index in range(5):
        section_text(message, index)  # valid Block Kit, within Slack's limits
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    sample = readme.split("A burst of five events from three sources", 1)[1]
    sample = sample.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(sample) == message
    assert "step 1 → 2 of 4 · Whippy SMS" in message["blocks"][1]["text"]["text"]
