"""worker.codec: lossless round trips, equality semantics, id elision and compactness."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from worker.codec import SEP, Stored, decode, encode, encode_state, unchanged
from worker.enrollment import State, Status

FLAGS = (None, False, True)
RAW_FOR = {
    Status.PENDING: "DRAFT",
    Status.ACTIVE: "Active",
    Status.PAUSED: "OutOfOffice",
    Status.BLOCKED: "Inactive",
    Status.FINISHED: "FINISHED",
    Status.REMOVED: "removed",
}
STATES = [
    State(
        status=status,
        raw_status=RAW_FOR[status],
        step=step,
        step_id=step_id,
        replied=replied,
        bounced=bounced,
        opted_out=opted_out,
    )
    for status, replied, bounced, opted_out, step, step_id in product(
        Status, FLAGS, FLAGS, FLAGS, (None, 1, 42), (None, "step-7f3a")
    )
]

REPLY_STATE = State(status=Status.ACTIVE, raw_status="Active", step=2, opted_out=False)
SEQ_UUID = "9b1f6a0e-2f1d-4c1e-9a3b-1f2e3d4c5b6a"
PERSON_UUID = "5e2a7c1b-8d3f-4a6e-9b0c-2d1e4f5a6b7c"
ENROLL_UUID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def roundtrip(
    state: State,
    *,
    enrollment_id: str = "100:12345",
    sequence_id: str | None = "100",
    contact_id: str | None = "12345",
) -> Stored:
    value = encode(
        state,
        enrollment_id=enrollment_id,
        sequence_id=sequence_id,
        contact_id=contact_id,
    )
    return decode(value, enrollment_id=enrollment_id)


@pytest.mark.parametrize("state", STATES)
def test_roundtrip_state(state: State) -> None:
    stored = roundtrip(state)
    assert stored == Stored(state=state, sequence_id="100", contact_id="12345")


@pytest.mark.parametrize(("life", "rev"), [(0, 0), (4, 2)])
def test_missed_marker_roundtrip_and_blocks_the_fast_path(life: int, rev: int) -> None:
    def at(*, missed: bool = False) -> str:
        return encode(
            REPLY_STATE, enrollment_id="100:12345", sequence_id="100", contact_id="12345",
            life=life, rev=rev, missed=missed,
        )  # fmt: skip

    value = at(missed=True)
    back = decode(value, enrollment_id="100:12345")
    assert (back.missed, back.life, back.rev, back.state) == (True, life, rev, REPLY_STATE)
    assert not unchanged(value, encode_state(REPLY_STATE))  # it must be rewritten when seen
    cleared = at()
    assert unchanged(cleared, encode_state(REPLY_STATE))
    assert not decode(cleared, enrollment_id="100:12345").missed


@pytest.mark.parametrize(
    ("enrollment_id", "sequence_id", "contact_id"),
    [
        ("100:12345", "100", "12345"),  # Reply.io: derivable
        ("7:contact-9", "7", "contact-9"),  # Whippy-style: derivable
        ("7:a:b", "7", "a:b"),  # contact id holding a colon: still derivable
        ("a:b:c", "a:b", "c"),  # sequence id holding a colon
        (ENROLL_UUID, SEQ_UUID, PERSON_UUID),  # Unify: not derivable
        ("42", "100", "12345"),  # Zendesk Sell-style numeric enrollment id
        ("100:12345", "100", "99999"),  # looks derivable, but is not
        ("100:12345", "999", "12345"),
        (ENROLL_UUID, SEQ_UUID, None),
        (ENROLL_UUID, None, PERSON_UUID),
        (ENROLL_UUID, None, None),
    ],
)
def test_roundtrip_ids(enrollment_id: str, sequence_id: str | None, contact_id: str | None) -> None:
    stored = roundtrip(
        REPLY_STATE, enrollment_id=enrollment_id, sequence_id=sequence_id, contact_id=contact_id
    )
    assert stored.state == REPLY_STATE
    assert (stored.sequence_id, stored.contact_id) == (sequence_id, contact_id)


def test_ids_are_elided_only_when_derivable() -> None:
    derivable = encode(
        REPLY_STATE,
        enrollment_id="100:12345",
        sequence_id="100",
        contact_id="12345",
    )
    assert "12345" not in derivable
    assert derivable.count(SEP) == 4

    kept = encode(
        REPLY_STATE,
        enrollment_id=ENROLL_UUID,
        sequence_id=SEQ_UUID,
        contact_id=PERSON_UUID,
    )
    assert kept.split(SEP)[-2:] == [SEQ_UUID, PERSON_UUID]
    assert ENROLL_UUID not in kept  # the key already holds it


def test_same_state_same_string() -> None:
    for state in STATES:
        assert encode_state(state) == encode_state(replace(state))


def test_history_and_ids_do_not_affect_encode_state() -> None:
    """encode_state is what the diff compares: only watched fields may matter."""
    one = encode(REPLY_STATE, rev=1, enrollment_id="1:2", sequence_id="1", contact_id="2")
    two = encode(REPLY_STATE, rev=2, enrollment_id="1:2", sequence_id="1", contact_id="2")
    assert one != two
    assert one.startswith(encode_state(REPLY_STATE) + SEP)
    assert two.startswith(encode_state(REPLY_STATE) + SEP)


def test_every_distinct_state_has_a_distinct_encoding() -> None:
    encodings = {encode_state(s) for s in STATES}
    assert len(encodings) == len(STATES)


BASE = State(
    status=Status.ACTIVE,
    raw_status="Active",
    step=2,
    step_id="s-2",
    replied=False,
    bounced=None,
    opted_out=False,
)
CHANGES: list[tuple[str, State]] = [
    *[(f"status-{s}", replace(BASE, status=s)) for s in Status if s is not BASE.status],
    ("raw_status", replace(BASE, raw_status="active")),
    ("raw_status-empty", replace(BASE, raw_status="")),
    ("step-3", replace(BASE, step=3)),
    ("step-22", replace(BASE, step=22)),
    ("step-none", replace(BASE, step=None)),
    ("step_id", replace(BASE, step_id="s-3")),
    ("step_id-none", replace(BASE, step_id=None)),
    ("replied-true", replace(BASE, replied=True)),
    ("replied-none", replace(BASE, replied=None)),
    ("bounced-true", replace(BASE, bounced=True)),
    ("bounced-false", replace(BASE, bounced=False)),
    ("opted_out-true", replace(BASE, opted_out=True)),
    ("opted_out-none", replace(BASE, opted_out=None)),
]


@pytest.mark.parametrize("changed", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_any_watched_field_change_changes_the_string(changed: State) -> None:
    assert changed != BASE
    assert encode_state(changed) != encode_state(BASE)


def test_separator_inside_values_cannot_shift_fields() -> None:
    """The separator is replaced (by a space) rather than corrupting later fields."""
    state = State(
        status=Status.PAUSED,
        raw_status=f"Out{SEP}Of{SEP}Office",
        step=3,
        step_id=f"st{SEP}ep",
        replied=True,
        bounced=False,
        opted_out=None,
    )
    stored = roundtrip(
        state,
        enrollment_id=ENROLL_UUID,
        sequence_id=f"seq{SEP}1",
        contact_id=f"con{SEP}2",
    )
    assert stored == Stored(
        state=replace(state, raw_status="Out Of Office", step_id="st ep"),
        sequence_id="seq 1",
        contact_id="con 2",
    )


def test_unicode_values_roundtrip() -> None:
    state = replace(BASE, raw_status="Pausé ⏸", step_id="étape-1")
    assert roundtrip(state).state == state


def test_typical_replyio_state_is_small() -> None:
    value = encode(
        REPLY_STATE,
        enrollment_id="100:12345",
        sequence_id="100",
        contact_id="12345",
    )
    assert len(value.encode()) < 40


def test_typical_unify_state_adds_only_its_ids() -> None:
    state = State(
        status=Status.PAUSED,
        raw_status="IN_PROGRESS",
        replied=False,
        bounced=False,
        opted_out=False,
    )
    value = encode(
        state,
        enrollment_id=ENROLL_UUID,
        sequence_id=SEQ_UUID,
        contact_id=PERSON_UUID,
    )
    assert len(value.encode()) < 40 + len(SEQ_UUID) + len(PERSON_UUID)


@pytest.mark.parametrize("reason", [None, "", "manual", "unsubscribed\x1etricky\x1fvalue"])
def test_reason_survives_the_round_trip_and_counts_as_a_change(reason: str | None) -> None:
    state = State(status=Status.FINISHED, raw_status="finished", step=2, reason=reason)
    value = encode(state, enrollment_id="9", sequence_id="1", contact_id="2")
    back = decode(value, enrollment_id="9").state
    expected = None if reason is None else reason.replace("\x1e", " ").replace("\x1f", " ")
    assert back.reason == expected
    assert back.raw_status == "finished"
    assert encode_state(state) != encode_state(State(status=Status.FINISHED, raw_status="x"))
    if reason is not None:
        assert encode_state(state) != encode_state(
            State(status=Status.FINISHED, raw_status="finished", step=2)
        )


def test_reason_appears_in_the_event_state_only_when_known() -> None:
    plain = State(status=Status.ACTIVE, raw_status="Active")
    assert "reason" not in plain.as_dict()
    assert (
        State(status=Status.FINISHED, raw_status="finished", reason="manual").as_dict()["reason"]
        == "manual"
    )


@pytest.mark.parametrize(("life", "rev"), [(0, 0), (0, 1), (3, 0), (2, 41), (2**40, 2**40)])
def test_birth_and_revision_roundtrip(life: int, rev: int) -> None:
    value = encode(
        REPLY_STATE,
        enrollment_id="100:12345",
        sequence_id="100",
        contact_id="12345",
        life=life,
        rev=rev,
    )
    back = decode(value, enrollment_id="100:12345")
    assert (back.life, back.rev) == (life, rev)
    assert back.state == REPLY_STATE
    assert value.startswith(encode_state(REPLY_STATE) + SEP)  # the diff's view is unchanged


def test_a_record_that_never_changed_costs_one_separator() -> None:
    fresh = encode(REPLY_STATE, enrollment_id="100:12345", sequence_id="100", contact_id="12345")
    assert fresh == encode_state(REPLY_STATE) + SEP
    back = decode(fresh, enrollment_id="100:12345")
    assert (back.life, back.rev, back.missed) == (0, 0, False)


@pytest.mark.parametrize("state", STATES[:40])
def test_unchanged_recognises_exactly_the_same_state(state: State) -> None:
    value = encode(state, enrollment_id="9", sequence_id="1", contact_id="2", life=1, rev=3)
    assert unchanged(value, encode_state(state))
    for other in STATES[40:60]:
        if other != state:
            assert not unchanged(value, encode_state(other))


def test_unchanged_does_not_match_a_longer_raw_status() -> None:
    short = State(status=Status.ACTIVE, raw_status="Active")
    longer = State(status=Status.ACTIVE, raw_status="Active2")
    value = encode(longer, enrollment_id="1:2", sequence_id="1", contact_id="2")
    assert not unchanged(value, encode_state(short))


@pytest.mark.parametrize(
    ("missed", "gone", "high_step", "fired"),
    [
        (0, False, None, frozenset()),
        (2, False, None, frozenset()),
        (3, False, 7, frozenset({"replied", "opted_out"})),
        (0, True, 5, frozenset({"bounced"})),
    ],
)
def test_history_marks_roundtrip(
    missed: int, gone: bool, high_step: int | None, fired: frozenset[str]
) -> None:
    stale = replace(REPLY_STATE, step=1)  # below every high-water mark used here
    value = encode(
        stale, enrollment_id="100:12345", sequence_id="100", contact_id="12345",
        life=3, rev=9, missed=missed, gone=gone, high_step=high_step, fired=fired,
    )  # fmt: skip
    back = decode(value, enrollment_id="100:12345")
    assert (back.life, back.rev, back.missed, back.gone) == (3, 9, missed, gone)
    assert (back.high_step, back.fired, back.state) == (high_step, fired, stale)
    # Absent or tombstoned records must be rewritten when listed; marks alone do not force it.
    assert unchanged(value, encode_state(stale)) == (not missed and not gone)


def test_marks_the_state_already_shows_are_not_stored() -> None:
    state = State(status=Status.ACTIVE, raw_status="Active", step=4, replied=True)
    value = encode(
        state, enrollment_id="9", sequence_id="1", contact_id="2",
        high_step=4, fired=frozenset({"replied"}),
    )  # fmt: skip
    assert value == encode(state, enrollment_id="9", sequence_id="1", contact_id="2")
