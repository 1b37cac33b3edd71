"""The bucket layout: packed ids round-trip, and a split only ever moves ids off its source."""

from __future__ import annotations

import random
import uuid

import pytest

from worker.store import buckets

IDS = [
    "5000:10048271",
    "42",
    "0",
    "007",
    ":",
    "1::2:",
    "1" * 64,
    "1" * 65,
    "\uff11\uff12",  # full-width digits are not ASCII digits: stored as they are
    "",
    "seq:ünïcode",
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "0F8FAD5B-D9CB-469F-A165-70867728950E",  # not canonical: stored as it is
    "0f8fad5b-d9cb-469f-a165-70867728950e:7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "0f8fad5b-d9cb-469f-a165-70867728950e:not-a-uuid-but-thirty-six-chars-long",
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "\xff\xfe",
]


@pytest.mark.parametrize("enrollment_id", IDS)
def test_every_id_round_trips_through_its_field_name(enrollment_id: str) -> None:
    field = buckets.pack_id(enrollment_id)
    raw = field if isinstance(field, bytes) else field.encode()
    assert buckets.unpack_id(raw) == enrollment_id


@pytest.mark.parametrize(
    "enrollment_id",
    [
        *IDS,
        "1" * 29,  # packs to 16 bytes: padded, so only a UUID is 16 bytes
        "1" * 30,
        "sixteen-chars-id",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
    ],
)
def test_every_id_round_trips_through_its_v2_field_and_only_a_uuid_is_16_bytes(
    enrollment_id: str,
) -> None:
    field = buckets.pack_id_v2(enrollment_id)
    raw = field if isinstance(field, bytes) else field.encode()
    assert buckets.unpack_id_v2(raw) == enrollment_id
    is_uuid = enrollment_id == "0f8fad5b-d9cb-469f-a165-70867728950e"  # the canonical one
    assert (len(raw) == 16) == is_uuid


def test_uuid_ids_are_packed_to_raw_bytes() -> None:
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    assert len(buckets.pack_id(one)) == 17
    assert len(buckets.pack_id(f"{one}:{two}")) == 33
    assert len(buckets.pack_id("5000:10048271")) == 8
    assert len(buckets.pack_id("40000123")) == 5


@pytest.mark.parametrize("index", [0, 127, 128, 5000])
def test_a_pair_whose_sequence_has_a_name_packs_to_the_name_and_the_contact(index: int) -> None:
    sequence, contact = str(uuid.uuid4()), str(uuid.uuid4())
    parts = buckets.pair_parts(f"{sequence}:{contact}")
    assert parts is not None
    assert parts[0] == sequence
    field = buckets.pack_pair_ref(index, parts[1])
    assert len(field) == (18 if index < 128 else 19)
    assert buckets.unpack_id(field, {index: sequence}) == f"{sequence}:{contact}"
    with pytest.raises(ValueError, match="names"):
        buckets.unpack_id(field)
    # Never the field of another id.
    assert field not in {buckets.pack_id(f"{sequence}:{contact}"), buckets.pack_id(contact)}


@pytest.mark.parametrize(
    "enrollment_id",
    [
        "5000:10048271",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "0F8FAD5B-D9CB-469F-A165-70867728950E:7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "0f8fad5b-d9cb-469f-a165-70867728950e:not-a-uuid-but-thirty-six-chars-long",
    ],
)
def test_only_canonical_uuid_pairs_have_pair_parts(enrollment_id: str) -> None:
    assert buckets.pair_parts(enrollment_id) is None


def test_growing_by_one_bucket_moves_ids_only_from_the_split_source_to_the_new_bucket() -> None:
    rng = random.Random(7)
    hashes = [rng.getrandbits(32) for _ in range(5000)]
    for count in range(1, 300):
        before = [buckets.bucket_for(h, count) for h in hashes]
        after = [buckets.bucket_for(h, count + 1) for h in hashes]
        source = buckets.split_source(count)
        for old, new in zip(before, after, strict=True):
            assert 0 <= new < count + 1
            assert old == new or (old == source and new == count)


def test_buckets_are_sized_to_the_source() -> None:
    assert buckets.wanted_buckets(0) == 1
    assert buckets.wanted_buckets(buckets.FILL) == 1
    assert buckets.wanted_buckets(buckets.FILL + 1) == 2
    assert buckets.wanted_buckets(1_000_000) == -(-1_000_000 // buckets.FILL)


def test_short_digit_ids_pack_alike_in_both_packings() -> None:
    # StateStore inlines the digits case for ids up to SHORT_DIGITS long: it must give the bytes
    # both packings give.
    for size in range(1, buckets.SHORT_DIGITS + 1):
        for enrollment_id in ("7" * size, ("12:" * size)[:size]):
            packed = buckets.pack_id(enrollment_id)
            assert isinstance(packed, bytes)
            assert buckets.pack_id_v2(enrollment_id) == packed
            assert buckets.pack_digit_ids([enrollment_id]) == [packed]


def test_pack_digit_ids_packs_a_list_of_short_digit_ids_or_none() -> None:
    short = ["5000:10048271", "42", ":", "1" * buckets.SHORT_DIGITS]
    assert buckets.pack_digit_ids(short) == [buckets.pack_id(i) for i in short]
    for other in ("", "1" * (buckets.SHORT_DIGITS + 1), "12a", "x:1", "١٢", str(uuid.UUID(int=1))):
        assert buckets.pack_digit_ids([*short, other]) is None
    assert buckets.pack_digit_ids([]) is None


def test_pack_digit_ids_agrees_with_pack_id_on_mixed_lists() -> None:
    # Odd and even lengths side by side: each field is padded on its own, never its neighbour.
    rng = random.Random(7)
    pieces = ["", ":", "0", "12", "1:2", "5000:10048271", "9" * 27, "9" * 28, "9" * 29, "a1", "1²"]
    for _ in range(2000):
        ids = [
            rng.choice(pieces) + str(rng.randrange(10 ** rng.randrange(1, 9))) * rng.randrange(2)
            for _ in range(rng.randrange(1, 8))
        ]
        short = all(0 < len(i) <= buckets.SHORT_DIGITS and not i.strip(":0123456789") for i in ids)
        expected = [buckets.pack_id(i) for i in ids] if short else None
        assert buckets.pack_digit_ids(ids) == expected, ids
