"""Whippy normalization (SPEC §5) of folded contacts; rows from providers/README.md §2.9."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from worker.enrollment import Contact, SequenceRef, State, Status
from worker.errors import MalformedResponse
from worker.normalize import NORMALIZERS, whippy
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage

SEQ = "e4a747a3-a290-48da-b671-d3cd591f920b"
CONTACT = {
    "id": "147363b7-3ce5-445f-9193-27e96f1cf12d",
    "name": "Giovanni Torp",
    "email": None,
    "phone": "+13603094336",
}
STEP_1 = "5137e2c4-fe04-4c55-8810-943b33fd0f72"
STEP_2 = "20020b31-f015-4713-bd31-01fca79dbf0e"
STEP_3 = "9f1c7a1e-0000-4000-8000-000000000003"
STEPS = {STEP_1: 0, STEP_2: 1, STEP_3: 2}
FINISHED_ROW: dict[str, Any] = {
    "id": "8276e83f-21b1-4f16-b3a3-1a1a7c8e46f1",
    "status": "finished",
    "step_id": STEP_1,
    "unsubscribed": False,
    "created_at": "2023-11-02T14:03:44Z",
    "updated_at": "2023-11-02T14:03:45Z",
}
ACTIVE_ROW: dict[str, Any] = {
    "id": "7fccfa0f-7397-4da3-9034-34cc14994ab0",
    "status": "active",
    "step_id": STEP_2,
    "unsubscribed": False,
    "created_at": "2023-11-02T14:03:46Z",
    "updated_at": "2023-11-02T14:03:46Z",
}
PAGE = RawPage(
    records=[],
    where=f"sequence {SEQ}, contacts (1 pages)",
    sequence=SequenceRef(id=SEQ, name="Q4 outreach"),
)


def folded(
    *rows: dict[str, Any], steps: dict[str, int] | None = None, **extra: Any
) -> dict[str, Any]:
    steps = STEPS if steps is None else steps
    record = {
        "sequence_id": SEQ,
        "contact": dict(CONTACT),
        "rows": [copy.deepcopy(r) for r in rows],
        "steps": steps,
    }
    return record | extra


def state(*rows: dict[str, Any], **extra: Any) -> State:
    return whippy.normalize(folded(*rows, **extra), page=PAGE).state


def on(step_id: str, status: str, **changes: Any) -> dict[str, Any]:
    return ACTIVE_ROW | {"step_id": step_id, "status": status} | changes


def test_readme_example_folds_into_one_enrollment() -> None:
    enrollment = whippy.normalize(folded(FINISHED_ROW, ACTIVE_ROW), page=PAGE)
    assert enrollment.enrollment_id == f"{SEQ}:{CONTACT['id']}"
    assert enrollment.sequence == SequenceRef(id=SEQ, name="Q4 outreach", steps_total=3)
    assert enrollment.contact == Contact(
        id=CONTACT["id"], email=None, name="Giovanni Torp", phone="+13603094336"
    )
    assert enrollment.state == State(
        status=Status.ACTIVE,
        raw_status="active",
        step=2,
        step_id=STEP_2,
        replied=None,  # no `responded=true` listing was read for this record
        bounced=None,
        opted_out=False,
    )
    assert enrollment.updated_at == "2023-11-02T14:03:46+00:00"
    assert NORMALIZERS["whippy"].full is whippy.normalize  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pending", Status.PENDING),
        ("active", Status.ACTIVE),
        ("moved", Status.ACTIVE),
        ("inactive", Status.BLOCKED),
        ("in-active", Status.BLOCKED),
        ("removed", Status.REMOVED),
        # Whippy marks a removed contact finished on the step it was on: the run ended.
        ("complete", Status.FINISHED),
        ("finished", Status.FINISHED),
        ("Inactive", Status.BLOCKED),
        ("SNOOZED_BY_VENDOR", Status.ACTIVE),  # unknown: nearest, raw kept
    ],
)
def test_status_table_on_a_middle_step(raw: str, expected: Status) -> None:
    got = state(on(STEP_2, raw))
    assert (got.status, got.raw_status, got.step) == (expected, raw, 2)


@pytest.mark.parametrize("raw", ["complete", "finished", "Complete"])
def test_completing_the_last_step_finishes_in_both_vocabularies(raw: str) -> None:
    got = state(on(STEP_3, raw))
    assert (got.status, got.raw_status, got.step, got.step_id) == (
        Status.FINISHED,
        raw,
        3,
        STEP_3,
    )


def test_a_step_the_sequence_no_longer_lists_has_no_number_but_still_finishes() -> None:
    got = state(on("gone-step", "complete"))
    assert (got.status, got.step, got.step_id) == (Status.FINISHED, None, "gone-step")
    empty = state(on("gone-step", "active"), steps={})
    assert (empty.status, empty.step) == (Status.ACTIVE, None)


def test_removal_finishes_on_the_step_it_was_on() -> None:
    # removesequencecontacts: "the status of contact will be updated to Finished".
    got = state(FINISHED_ROW | {"updated_at": "2023-11-02T14:03:40Z"}, on(STEP_2, "finished"))
    assert (got.status, got.raw_status, got.step) == (Status.FINISHED, "finished", 2)


def test_empty_contact_strings_are_null_and_the_phone_is_kept() -> None:
    contact = {"id": "c1", "name": "", "email": "", "phone": "+13603094336"}
    got = whippy.normalize(folded(ACTIVE_ROW, contact=contact), page=PAGE).contact
    assert got == Contact(id="c1", email=None, name=None, phone="+13603094336")
    assert got.as_dict() == {
        "id": "c1", "email": None, "name": None, "company": None, "phone": "+13603094336",
    }  # fmt: skip
    no_phone = whippy.normalize(folded(ACTIVE_ROW, contact={"id": "c1", "phone": ""}), page=PAGE)
    assert "phone" not in no_phone.contact.as_dict()


def test_newest_is_the_latest_updated_at_even_on_an_earlier_step() -> None:
    # A second run: the contact starts over on step 1 after finishing the sequence.
    old_end = on(STEP_3, "complete", id="r3", updated_at="2024-01-01T10:00:00Z")
    rerun = on(STEP_1, "active", id="r4", updated_at="2024-02-01T10:00:00Z")
    got = state(old_end, rerun)
    assert (got.status, got.step, got.step_id) == (Status.ACTIVE, 1, STEP_1)


def test_rows_updated_together_resolve_to_the_furthest_step() -> None:
    moved_on = on(STEP_1, "complete", id="a", updated_at="2024-01-01T10:00:00Z")
    started = on(STEP_2, "active", id="b", updated_at="2024-01-01T10:00:00Z")
    for rows in ((moved_on, started), (started, moved_on)):
        assert state(*rows).step == 2


def test_exact_ties_resolve_to_the_later_row() -> None:
    a = on(STEP_2, "inactive", id="a")
    b = on(STEP_2, "active", id="b")
    assert state(a, b).raw_status == "active"
    assert state(b, a).raw_status == "inactive"


def test_timestamps_compare_as_instants_whatever_their_format() -> None:
    zoned = on(STEP_1, "inactive", id="a", updated_at="2024-01-01T12:00:00.000000+02:00")
    plain = on(STEP_1, "active", id="b", updated_at="2024-01-01T10:30:00")  # no zone: UTC
    got = whippy.normalize(folded(zoned, plain), page=PAGE)
    assert got.state.raw_status == "active"
    assert got.updated_at == "2024-01-01T10:30:00+00:00"
    micro = on(STEP_1, "pending", id="c", updated_at="2024-01-01T10:30:00.000001Z")
    assert state(zoned, plain, micro).raw_status == "pending"


def test_opted_out_from_unsubscribed_on_any_row() -> None:
    assert state(FINISHED_ROW | {"unsubscribed": True}, ACTIVE_ROW).opted_out is True
    assert state(FINISHED_ROW, ACTIVE_ROW).opted_out is False
    bare = [{k: v for k, v in r.items() if k != "unsubscribed"} for r in (FINISHED_ROW, ACTIVE_ROW)]
    assert state(*bare).opted_out is None


def test_replied_only_from_the_responded_listing_never_a_row_field() -> None:
    assert state(FINISHED_ROW, ACTIVE_ROW).replied is None
    assert state(FINISHED_ROW, ACTIVE_ROW, responded=False).replied is False
    assert state(ACTIVE_ROW, responded=True).replied is True
    # A row field of that name is in no vendor material: it is not read.
    assert state(ACTIVE_ROW | {"responded": True}, responded=False).replied is False
    assert state(ACTIVE_ROW).bounced is None


def test_sequence_name_only_from_the_matching_page() -> None:
    other = RawPage(records=[], where="x", sequence=SequenceRef(id="other", name="Other"))
    got = whippy.normalize(folded(ACTIVE_ROW), page=other).sequence
    assert got == SequenceRef(id=SEQ, steps_total=3)


def test_steps_total_is_the_last_step_of_the_sequence_definition() -> None:
    def total(steps: dict[str, int]) -> int | None:
        return whippy.normalize(folded(ACTIVE_ROW, steps=steps), page=PAGE).sequence.steps_total

    assert total(STEPS) == 3
    assert total({STEP_2: 1}) == 2  # so the step (2) is never above the total
    assert total({STEP_1: 0, STEP_2: 1, STEP_3: 4}) == 5  # steps are numbered position + 1
    assert total({}) is None  # no definition, no total
    # Descriptive only: the diffed state does not depend on it.
    assert state(ACTIVE_ROW, steps={STEP_2: 1}) == state(ACTIVE_ROW)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (folded(ACTIVE_ROW, sequence_id=None), "sequence_id"),
        (folded(ACTIVE_ROW, contact=None), "contact"),
        (folded(ACTIVE_ROW, contact={"name": "x"}), "contact.id"),
        (folded(ACTIVE_ROW, contact={"id": "c", "email": 5}), "contact.email"),
        (folded(ACTIVE_ROW, rows=[]), "rows"),
        (folded(ACTIVE_ROW, rows=None), "rows"),
        (folded(ACTIVE_ROW, rows=[ACTIVE_ROW, "x"]), "rows[1]"),
        (folded(ACTIVE_ROW, FINISHED_ROW | {"updated_at": None}), "rows[1].updated_at"),
        (folded(ACTIVE_ROW, FINISHED_ROW | {"updated_at": "yesterday"}), "rows[1].updated_at"),
        (folded(ACTIVE_ROW | {"status": None}), "rows[0].status"),
        (folded(ACTIVE_ROW | {"step_id": None}), "rows[0].step_id"),
        (folded(ACTIVE_ROW | {"unsubscribed": "no"}), "rows[0].unsubscribed"),
        (folded(ACTIVE_ROW, responded=1), "responded"),
        (folded(ACTIVE_ROW) | {"steps": None}, "steps"),
        (folded(ACTIVE_ROW) | {"steps": {STEP_2: "1"}}, f"steps.{STEP_2}"),
    ],
)
def test_bad_records_name_the_field(record: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError, match=re.escape(f"record field '{field}'")) as info:
        whippy.normalize(record, page=PAGE)
    assert isinstance(info.value, MalformedResponse)


def test_a_step_completed_after_the_next_one_started_does_not_end_the_run() -> None:
    # Whippy may write the old step's `complete` a moment after the next step's row.
    started = on(STEP_2, "active", id="b", created_at="2024-01-01T10:00:00Z",
                 updated_at="2024-01-01T10:00:00Z")  # fmt: skip
    done = on(STEP_1, "complete", id="a", created_at="2024-01-01T09:00:00Z",
              updated_at="2024-01-01T10:00:02Z")  # fmt: skip
    got = state(done, started)
    assert (got.status, got.step, got.raw_status) == (Status.ACTIVE, 2, "active")


def test_a_finished_row_of_a_new_run_ends_it_whatever_the_old_run_reached() -> None:
    old = on(STEP_3, "complete", id="old", created_at="2024-01-01T09:00:00Z",
             updated_at="2024-01-01T09:30:00Z")  # fmt: skip
    removed = on(STEP_1, "finished", id="new", created_at="2024-02-01T09:00:00Z",
                 updated_at="2024-02-01T10:00:00Z")  # fmt: skip
    got = state(old, removed)
    assert (got.status, got.step) == (Status.FINISHED, 1)
