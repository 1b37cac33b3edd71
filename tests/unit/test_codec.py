"""worker.store.codec: lossless round trips, equality semantics, id elision and compactness."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise, product

import pytest

from worker.enrollment import State, Status
from worker.store.codec import (
    SEP,
    Stored,
    decode,
    encode,
    encode_state,
    encode_state_fields,
    expand_ids,
    head_end,
    head_ref,
    intern_ids,
    read_head_ref,
    same_state,
    state_text,
    unchanged,
)

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
    assert derivable == encode_state(REPLY_STATE) + "\x00"  # the state and an empty history

    kept = encode(
        REPLY_STATE,
        enrollment_id=ENROLL_UUID,
        sequence_id=SEQ_UUID,
        contact_id=PERSON_UUID,
    )
    # Both UUIDs in 16 bytes and a tag each; the enrollment id is not repeated (the field).
    assert len(kept) == len(derivable) + 2 * 17
    assert bytes.fromhex(PERSON_UUID.replace("-", "")).decode("latin-1") in kept
    assert bytes.fromhex(ENROLL_UUID.replace("-", "")).decode("latin-1") not in kept


def test_same_state_same_string() -> None:
    for state in STATES:
        assert encode_state(state) == encode_state(replace(state))


def test_history_and_ids_do_not_affect_encode_state() -> None:
    """encode_state is what the diff compares: only watched fields may matter."""
    one = encode(REPLY_STATE, rev=1, enrollment_id="1:2", sequence_id="1", contact_id="2")
    two = encode(REPLY_STATE, rev=2, enrollment_id="1:2", sequence_id="1", contact_id="2")
    assert one != two
    assert one.startswith(encode_state(REPLY_STATE))
    assert two.startswith(encode_state(REPLY_STATE))
    assert unchanged(one, encode_state(REPLY_STATE))
    assert unchanged(two, encode_state(REPLY_STATE))


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


def test_no_state_key_is_a_prefix_of_another() -> None:
    """`unchanged` compares a stored value's start with a key: a key that began another one
    would make a changed state look unchanged."""
    keys = sorted({encode_state(s) for s in [*STATES, *(c for _, c in CHANGES)]})
    for shorter, longer in pairwise(keys):
        assert not longer.startswith(shorter)


@pytest.mark.parametrize("state", [*STATES[::7], *(c for _, c in CHANGES)])
def test_encode_state_fields_is_encode_state(state: State) -> None:
    assert encode_state_fields(
        state.status, state.raw_status, state.step, state.step_id,
        state.replied, state.bounced, state.opted_out, state.reason,
    ) == encode_state(state)  # fmt: skip


@pytest.mark.parametrize(
    "state",
    [
        State(status=Status.ACTIVE, raw_status="Active", step=-3),
        State(status=Status.ACTIVE, raw_status="Active", step=10**12),
        State(status=Status.ACTIVE, raw_status="x" * 300, step_id="7" * 40),
        State(status=Status.ACTIVE, raw_status="a", step_id="00012"),  # not canonical: text
        State(status=Status.ACTIVE, raw_status="a", step_id="8276E83F-21B1-4F16-B3A3-1A1A7C8E46F1"),
        State(status=Status.ACTIVE, raw_status="", step_id="", reason=""),
    ],
)
def test_unusual_values_roundtrip_exactly(state: State) -> None:
    assert roundtrip(state).state == state


def test_separators_inside_values_survive() -> None:
    """Lengths, not separators, delimit values: they come back exactly."""
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
    assert stored == Stored(state=state, sequence_id=f"seq{SEP}1", contact_id=f"con{SEP}2")


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
    assert len(value) <= 6  # one byte per character


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
    assert len(value) <= 4 + 17 + 17


@pytest.mark.parametrize("reason", [None, "", "manual", "unsubscribed\x1etricky\x1fvalue"])
def test_reason_survives_the_round_trip_and_counts_as_a_change(reason: str | None) -> None:
    state = State(status=Status.FINISHED, raw_status="finished", step=2, reason=reason)
    value = encode(state, enrollment_id="9", sequence_id="1", contact_id="2")
    back = decode(value, enrollment_id="9").state
    assert back.reason == reason
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
    assert unchanged(value, encode_state(REPLY_STATE))  # the diff's view is unchanged


def test_a_record_that_never_changed_costs_one_byte() -> None:
    fresh = encode(REPLY_STATE, enrollment_id="100:12345", sequence_id="100", contact_id="12345")
    assert fresh == encode_state(REPLY_STATE) + "\x00"
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


# Values written by the text format (main before the binary one), with what they hold.
OLD_VALUES = [
    (
        "annf\x1f2\x1f\x1fActive\x1f",
        "100:12345",
        Stored(state=REPLY_STATE, sequence_id="100", contact_id="12345"),
    ),
    (
        "stfn\x1f3\x1fétape-1\x1fPausé ⏸\x1f2.5.h4.fb",
        "7:a:b",
        Stored(
            state=State(
                status=Status.PAUSED, raw_status="Pausé ⏸", step=3, step_id="étape-1",
                replied=True, bounced=False,
            ),
            sequence_id="7", contact_id="a:b", life=2, rev=5, high_step=4,
            fired=frozenset({"bounced"}),
        ),
    ),
    (
        f"afff\x1f\x1f\x1fIN_PROGRESS\x1f0.0.m\x1f{SEQ_UUID}\x1f{PERSON_UUID}",
        ENROLL_UUID,
        Stored(
            state=State(
                status=Status.ACTIVE, raw_status="IN_PROGRESS", replied=False, bounced=False,
                opted_out=False,
            ),
            sequence_id=SEQ_UUID, contact_id=PERSON_UUID, missed=1,
        ),
    ),
    (
        "fnnn\x1f2\x1f\x1ffinished\x1emanual\x1f1.3.m2\x1f21124\x1f1988695232\x1flead",
        "92593",
        Stored(
            state=State(status=Status.FINISHED, raw_status="finished", step=2, reason="manual"),
            sequence_id="21124", contact_id="1988695232", contact_type="lead", life=1, rev=3,
            missed=2,
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("old", "enrollment_id", "expected"), OLD_VALUES)
def test_text_format_values_still_decode(old: str, enrollment_id: str, expected: Stored) -> None:
    assert decode(old, enrollment_id=enrollment_id) == expected
    # As the store reads them: one character per byte.
    as_read = old.encode().decode("latin-1")
    assert decode(as_read, enrollment_id=enrollment_id) == expected
    # Never taken for an unchanged new-format value, even for the very same state...
    assert not unchanged(as_read, encode_state(expected.state))
    # ...and event change keys still hash the text form of the state.
    assert old.startswith(state_text(expected.state) + SEP)


def test_interned_ids_need_and_use_the_names() -> None:
    value = encode(
        REPLY_STATE, enrollment_id="92593", sequence_id=SEQ_UUID, contact_id="1988695232",
        contact_type="lead", life=1, rev=2,
    )  # fmt: skip
    names: dict[int, str] = {}

    def intern(name: str) -> int:
        names.setdefault(len(names) + 300 if name == "lead" else len(names), name)
        return next(i for i, n in names.items() if n == name)

    packed = intern_ids(value, intern)
    assert set(names.values()) == {SEQ_UUID, "lead"}  # the contact id is never interned
    assert len(packed) < len(value) - 16
    assert expand_ids(packed, names) == value
    assert decode(packed, enrollment_id="92593", names=names) == decode(
        value, enrollment_id="92593"
    )
    with pytest.raises(ValueError, match="dictionary"):
        decode(packed, enrollment_id="92593")
    assert intern_ids("afff\x1f2\x1f\x1fActive\x1f", intern) == "afff\x1f2\x1f\x1fActive\x1f"


@pytest.mark.parametrize("index", [0, 31, 32, 62, 63, 200, 100_000])
@pytest.mark.parametrize(
    ("sequence_id", "contact_id", "rev"),
    [("100", "12345", 0), (SEQ_UUID, PERSON_UUID, 0), (SEQ_UUID, PERSON_UUID, 3), (None, None, 0)],
)
def test_a_value_split_at_its_head_comes_back_whole(
    index: int, sequence_id: str | None, contact_id: str | None, rev: int
) -> None:
    value = encode(
        REPLY_STATE, enrollment_id="100:12345", sequence_id=sequence_id,
        contact_id=contact_id, rev=rev,
    )  # fmt: skip
    cut = head_end(value)
    assert value[:cut].startswith(encode_state(REPLY_STATE))
    if rev:
        assert cut == len(encode_state(REPLY_STATE))  # numbers are not shared
    stored = head_ref(index) + value[cut:]
    found = read_head_ref(stored)
    assert found is not None
    assert found[0] == index
    assert value[:cut] + stored[found[1] :] == value
    assert read_head_ref(value) is None  # a whole value is never taken for a reference
    assert head_end("afff\x1f2\x1f\x1fActive\x1f") == 0


@pytest.mark.parametrize(("old", "enrollment_id", "expected"), OLD_VALUES)
def test_a_text_format_value_holds_the_same_state_unless_a_tombstone(
    old: str, enrollment_id: str, expected: Stored
) -> None:
    as_read = old.encode().decode("latin-1")
    assert same_state(as_read, encode_state(expected.state))
    assert not same_state(as_read, encode_state(replace(expected.state, step=99)))
    tomb = as_read.replace(".m", ".g") if ".m" in as_read else None
    if tomb is not None:
        assert not same_state(tomb, encode_state(expected.state))
    new = encode(expected.state, enrollment_id="1:2", sequence_id="1", contact_id="2", missed=1)
    assert same_state(new, encode_state(expected.state)) is False  # as `unchanged` says
