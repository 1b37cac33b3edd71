"""The stored contact type (Zendesk Sell lead/contact) survives encode/decode and missing marks."""

from __future__ import annotations

import pytest

from worker.enrollment import State, Status
from worker.store.codec import Stored, decode, encode, encode_state, unchanged

STATE = State(status=Status.ACTIVE, raw_status="active", step=2, reason=None)


@pytest.mark.parametrize("missed", [False, True])
@pytest.mark.parametrize("contact_type", ["lead", "contact"])
def test_contact_type_roundtrip(contact_type: str, missed: bool) -> None:
    value = encode(
        STATE,
        enrollment_id="92593",
        sequence_id="21124",
        contact_id="1988695232",
        contact_type=contact_type,
        life=3,
        rev=1,
        missed=missed,
    )
    assert decode(value, enrollment_id="92593") == Stored(
        state=STATE,
        sequence_id="21124",
        contact_id="1988695232",
        contact_type=contact_type,
        life=3,
        rev=1,
        missed=missed,
    )
    assert unchanged(value, encode_state(STATE)) is not missed


def test_type_is_stored_even_when_the_ids_come_from_the_enrollment_id() -> None:
    value = encode(
        STATE, enrollment_id="100:12345", sequence_id="100", contact_id="12345", contact_type="lead"
    )
    stored = decode(value, enrollment_id="100:12345")
    assert (stored.sequence_id, stored.contact_id, stored.contact_type) == ("100", "12345", "lead")


def test_records_written_without_a_type_still_decode() -> None:
    """Stored before types were kept (or by a provider without them): no type, same value."""
    old = encode(STATE, enrollment_id="92593", sequence_id="21124", contact_id="1988695232")
    assert decode(old, enrollment_id="92593").contact_type is None
    assert old == encode(
        STATE,
        enrollment_id="92593",
        sequence_id="21124",
        contact_id="1988695232",
        contact_type=None,
    )
    assert unchanged(old, encode_state(STATE))
