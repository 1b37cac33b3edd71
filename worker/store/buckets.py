"""How a source's stored enrollments are laid out over Redis hashes. Pure.

Linear hashing: a source of N enrollments has about N / FILL buckets, so every bucket stays a
small listpack-encoded hash (hash-max-listpack-entries defaults to 128) whatever the size. The
bucket count grows by one split at a time: bucket `new` is split off bucket `split_source(new)`
and takes the members whose hash now lands on it; every other bucket is untouched, so growth is
never a stop-the-world rehash.

Ids are the hash field names, packed where that pays: a canonical lowercase UUID takes 17 bytes
instead of 36, a pair of them (`<uuid>:<uuid>`) 33 instead of 73, an id of digits and colons
(`5000:10048271`) half a byte per character; any other id is stored as its own UTF-8 (a
0xFC-0xFF first byte can never start one). A source whose state began with this layout also
packs a pair whose first UUID (the sequence) is in its dictionary of names (worker/store/state.py)
as that name's index and the second UUID: 18 bytes instead of 33, and a UUID id in its 16
bytes alone (`pack_id_v2`: no other field of such a source is 16 bytes long).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

# Mean enrollments per bucket. A bucket not yet split in the current round holds up to twice the
# mean: 2 x 48 plus random spread stays under the listpack limit of 128.
FILL = 48
# Buckets are counted in groups (bucket >> GROUP_BITS) so an absence sweep reads the group counts
# first and then only the buckets of groups that lost members.
GROUP_BITS = 6
# At most this many splits ride on one page commit (a page adds at most 1,000 enrollments).
MAX_SPLITS_PER_COMMIT = 64

_UUID = b"\xff"
_UUID_PAIR = b"\xfe"
_PAIR_REF = b"\xfc"  # then the sequence's index in the source's names (varint), the contact UUID
_DIGITS = b"\xfd"  # then the id as hex nibbles, ':' as 'a', an odd length padded with 'f'
_PADDED = b"\xfb"  # v2: a 16-byte field that is not a UUID, made 17 bytes
_MAX_DIGITS = 64
DIGIT_CHARS = "0123456789:"
# Digit ids up to this long pack to at most 15 bytes: the same field in both packings (v2 pads
# only 16-byte fields), so the store may inline this case.
SHORT_DIGITS = 28
_DIGIT_BYTES = DIGIT_CHARS.encode()
_PAD = tuple("f" if size & 1 else "" for size in range(SHORT_DIGITS + 1))  # to whole bytes
# Separates the fields of `join_digit_ids`: no packed digits id holds this byte.
FIELD_SEP = b"\xee"
_FIELD_START = (FIELD_SEP + _DIGITS).hex()


def hash_of(enrollment_id: str) -> int:
    return zlib.crc32(enrollment_id.encode())


def span_of(buckets: int) -> int:
    """The smallest power of two >= `buckets`: a hash masked to it, then folded, is a bucket."""
    return 1 << (buckets - 1).bit_length()


def bucket_for(hashed: int, buckets: int) -> int:
    """The bucket of an id whose hash is `hashed` in a layout of `buckets` buckets."""
    high = span_of(buckets)
    bucket = hashed & (high - 1)
    return bucket if bucket < buckets else bucket - (high >> 1)


def split_source(new: int) -> int:
    """The bucket that bucket `new` is split off (growing from `new` to `new + 1` buckets)."""
    return new - (1 << (new.bit_length() - 1))


def wanted_buckets(tracked: int) -> int:
    return max(1, -(-tracked // FILL))


def group_of(bucket: int) -> int:
    return bucket >> GROUP_BITS


def _uuid_bytes(text: str) -> bytes | None:
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    digits = text.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    # Only the canonical spelling packs, so unpacking gives back exactly the id stored.
    return raw if len(raw) == 16 and raw.hex() == digits else None


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def pack_id(enrollment_id: str) -> str | bytes:
    """The hash field name of an enrollment id (see the module docstring)."""
    size = len(enrollment_id)
    if size == 36:
        raw = _uuid_bytes(enrollment_id)
        if raw is not None:
            return _UUID + raw
    elif size == 73 and enrollment_id[36] == ":":
        first, second = _uuid_bytes(enrollment_id[:36]), _uuid_bytes(enrollment_id[37:])
        if first is not None and second is not None:
            return _UUID_PAIR + first + second
    if 0 < size <= _MAX_DIGITS and not enrollment_id.strip(DIGIT_CHARS):
        nibbles = enrollment_id.replace(":", "a")
        return _DIGITS + bytes.fromhex(nibbles + "f" if size & 1 else nibbles)
    return enrollment_id


def pack_digit_ids(enrollment_ids: list[str]) -> list[bytes] | None:
    """`pack_id` of each id when every one is a digits id of at most SHORT_DIGITS characters
    (both packings agree on those), else None."""
    joined = join_digit_ids(enrollment_ids)
    return None if joined is None else joined.split(FIELD_SEP)[1:]


def join_digit_ids(enrollment_ids: list[str]) -> bytes | None:
    """`pack_digit_ids`, each field after a FIELD_SEP byte, in one bytes (None: not all are
    short digits ids). Checked and packed for the whole list at once: this runs for every
    enrollment of every poll, so no step loops in Python."""
    if not enrollment_ids:
        return None
    sizes = list(map(len, enrollment_ids))
    if min(sizes) == 0 or max(sizes) > SHORT_DIGITS:
        return None
    try:
        joined = "".join(enrollment_ids).encode("ascii")
    except UnicodeEncodeError:
        return None
    if joined.translate(None, _DIGIT_BYTES):  # something other than digits and ':'
        return None
    # Each id as '<sep><tag><digits, ':' as 'a'>[f]', one hex text, one fromhex (no digits id
    # holds nibble 'e', so the separator byte never occurs inside a field).
    padded = map(str.__add__, enrollment_ids, map(_PAD.__getitem__, sizes))
    return bytes.fromhex((_FIELD_START + _FIELD_START.join(padded)).replace(":", "a"))


def pair_parts(enrollment_id: str) -> tuple[str, bytes] | None:
    """(sequence UUID, contact UUID bytes) of a `<uuid>:<uuid>` id, else None."""
    if len(enrollment_id) != 73 or enrollment_id[36] != ":":
        return None
    second = _uuid_bytes(enrollment_id[37:])
    if second is None or _uuid_bytes(enrollment_id[:36]) is None:
        return None
    return enrollment_id[:36], second


def pack_pair_ref(index: int, contact: bytes) -> bytes:
    """The field of a `<uuid>:<uuid>` id whose sequence is name `index` of the source."""
    out = bytearray(_PAIR_REF)
    while index >= 128:
        out.append(index & 0x7F | 0x80)
        index >>= 7
    out.append(index)
    return bytes(out) + contact


def pack_id_v2(enrollment_id: str) -> str | bytes:
    """`pack_id` for a source whose state began with the v2 packing (worker/store/state.py)."""
    field = pack_id(enrollment_id)
    if isinstance(field, str):
        raw = field.encode()
        return _PADDED + raw if len(raw) == 16 else field
    if len(field) == 17 and field[:1] == _UUID:
        return field[1:]
    return _PADDED + field if len(field) == 16 else field


def unpack_id_v2(field: bytes, names: Mapping[int, str] | None = None) -> str:
    if len(field) == 16:
        return _uuid_text(field)
    if field[:1] == _PADDED:
        field = field[1:]
    return unpack_id(field, names)


def unpack_id(field: bytes, names: Mapping[int, str] | None = None) -> str:
    """`names`: the source's names (needed only for fields packed by `pack_pair_ref`)."""
    if field[:1] == _PAIR_REF:
        if names is None:
            raise ValueError("a field packed with a name needs the source's names (StateStore)")
        index = shift = 0
        at = 1
        while True:
            byte = field[at]
            at += 1
            index |= (byte & 0x7F) << shift
            if byte < 128:
                break
            shift += 7
        return f"{names[index]}:{_uuid_text(field[at:])}"
    if field[:1] == _UUID and len(field) == 17:
        return _uuid_text(field[1:])
    if field[:1] == _UUID_PAIR and len(field) == 33:
        return f"{_uuid_text(field[1:17])}:{_uuid_text(field[17:])}"
    if field[:1] == _DIGITS:
        return field[1:].hex().removesuffix("f").replace("a", ":")
    return field.decode()
