"""Compact encoding of one stored enrollment: the few fields the diff needs, nothing more.

A value is a byte string, held in a `str` one character per byte (latin-1), so the store can
hand it around as text and write it back byte for byte. Three parts, each self-delimiting:

* the state key (`encode_state`): a head byte (0x80 | status << 4 | which of step, step_id and
  reason follow), a byte for the three flags (replied, bounced, opted_out: none/false/true),
  the step (zigzag varint), raw_status, step_id (16 bytes for a canonical UUID, a varint for a
  canonical integer, else its text) and reason. raw_status and reason are one byte when they
  are in the static `WORDS` table, else their UTF-8 text after its length. The key depends
  only on the state: equal keys mean nothing the diff watches has changed, and no key is a
  prefix of another.
* one history byte (`_LIFE`, `_REV`, `_MISSED`, `_GONE`, `_HIGH`, `_FIRED`, `_IDS`, `_TYPE`:
  which of the following varints are there), then life, rev, missed, high_step, fired.
  `life` counts this enrollment id's lives, `rev` the changes in this life, `missed` the
  consecutive complete listings without it, `gone` marks a tombstone (removed by absence, kept
  so a re-enrollment starts a new life); `high_step` and `fired` are the monotonic marks where
  the current state no longer shows them (see worker/events.py on ids). All of it is written in
  the same atomic commit as the state, so it rolls back together with it.
* the sequence id and contact id, only when they cannot be read back from the enrollment id,
  and the contact's type where the provider has one (Zendesk Sell's lead/contact). Each is an
  id item: a UUID in 16 bytes, a canonical integer as a varint, or text. In Redis the store
  replaces the sequence id and the type by a reference into the source's own small dictionary
  of names (`intern_ids`, `expand_ids`; worker/store/state.py keeps the dictionary), and the value's
  head, shared by many enrollments, by another (`head_end`, `head_ref`): most values are then
  one byte, plus the contact id where it must be kept. `encode` itself never writes a
  reference, and `StateStore.load` puts the head back, so `unchanged` sees a whole key.

The WORDS table and the step id encodings may grow: a state then encodes differently, its stored
value no longer matches `unchanged`, is decoded, found equal state to state, and rewritten
silently once.

An unchanged enrollment is recognised from the raw stored value (`unchanged`), so the common
case of a re-poll costs neither a decode nor a write.

Values written before this format (text, fields joined by \\x1f, see `_decode_text`) always
start with an ASCII status letter and still decode; a new key never matches one, so such a
value is decoded, compared state to state, and rewritten (silently when nothing changed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.enrollment import State, Status

# The static dictionary of raw statuses and reasons seen across providers.
# APPEND ONLY: stored values hold these indexes (at most 255 entries; 0xFF means literal text).
WORDS: tuple[str, ...] = (
    # Reply.io
    "Active", "Paused", "Finished", "OutOfOffice", "Inactive", "MissingData", "New",
    "AutoReplied",
    # Unify
    "DRAFT", "IN_PROGRESS", "FINISHED", "auto_reply",
    # Whippy, Zendesk Sell
    "active", "pending", "moved", "inactive", "in-active", "complete", "finished", "removed",
    "blocked", "paused", "manual",
)  # fmt: skip
_WORD_CODE = {word: chr(index) for index, word in enumerate(WORDS)}
_LITERAL = "\xff"

_STATUSES = (
    Status.PENDING,
    Status.ACTIVE,
    Status.PAUSED,
    Status.BLOCKED,
    Status.FINISHED,
    Status.REMOVED,
)
_STATUS_HEAD = {status: 0x80 | index << 4 for index, status in enumerate(_STATUSES)}
# Head low bits: which optional parts of the state follow.
_STEP = 0x01
_STEP_ID_UUID = 0x02
_STEP_ID_INT = 0x04
_STEP_ID_TEXT = 0x06
_STEP_ID_MASK = 0x06
_REASON = 0x08
_TRI = {None: 0, False: 1, True: 2}
_UNTRI = (None, False, True)
_FLAGS = {
    (r, b, o): chr(_TRI[r] * 9 + _TRI[b] * 3 + _TRI[o])
    for r in _UNTRI
    for b in _UNTRI
    for o in _UNTRI
}
_UNFLAGS = {ord(code): flags for flags, code in _FLAGS.items()}

# The history byte.
_LIFE = 0x01
_REV = 0x02
_MISSED = 0x04
_GONE = 0x08
_HIGH = 0x10
_FIRED = 0x20
_IDS = 0x40  # sequence id and contact id follow
_TYPE = 0x80  # the contact's type follows
_REWRITE = _MISSED | _GONE  # a value with either must be rewritten when the enrollment is seen

# Id items (sequence id, contact id, contact type). Below _REF_WIDE: a dictionary reference.
_REF_WIDE = 0xF0  # a dictionary reference as a varint
_NONE = "\xf1"
_UUID = "\xf2"
_INT = "\xf3"
_TEXT = "\xf4"

FLAG_LETTERS = {"replied": "r", "bounced": "b", "opted_out": "o"}
_FIRED_BITS = {"replied": 1, "bounced": 2, "opted_out": 4}

_VARINTS = [chr(n) for n in range(128)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """One stored enrollment.

    `life` counts this enrollment id's lives in this source (a re-enrollment after a removal
    starts the next); `rev` counts the changes seen in this life. Together they make event ids a
    function of the enrollment's own stored history, never of a counter a lost write could have
    moved on. `missed` counts the consecutive complete listings it was absent from; `gone` marks
    a tombstone. `high_step` and `fired` are the monotonic marks (SPEC §5) where the current
    state no longer shows them.
    """

    state: State
    sequence_id: str | None = None
    contact_id: str | None = None
    contact_type: str | None = None
    life: int = 0
    rev: int = 0
    missed: int = 0
    gone: bool = False
    high_step: int | None = None
    fired: frozenset[str] = frozenset()


def _varint(n: int) -> str:
    if n < 128:
        return _VARINTS[n]
    out = []
    while n >= 128:
        out.append(chr(n & 0x7F | 0x80))
        n >>= 7
    out.append(chr(n))
    return "".join(out)


def _zigzag(n: int) -> str:
    return _varint(n << 1 if n >= 0 else (-n << 1) - 1)


def _read_varint(value: str, at: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = ord(value[at])
        at += 1
        n |= (byte & 0x7F) << shift
        if byte < 128:
            return n, at
        shift += 7


def _read_zigzag(value: str, at: int) -> tuple[int, int]:
    n, at = _read_varint(value, at)
    return (n >> 1 if not n & 1 else -((n + 1) >> 1)), at


def _text(text: str) -> str:
    raw = text.encode()
    return _varint(len(raw)) + raw.decode("latin-1")


def _read_text(value: str, at: int) -> tuple[str, int]:
    size, at = _read_varint(value, at)
    end = at + size
    return value[at:end].encode("latin-1").decode(), end


def _word(text: str) -> str:
    code = _WORD_CODE.get(text)
    return code if code is not None else _LITERAL + _text(text)


def _read_word(value: str, at: int) -> tuple[str, int]:
    if value[at] == _LITERAL:
        return _read_text(value, at + 1)
    return WORDS[ord(value[at])], at + 1


def _uuid(text: str) -> str | None:
    """The 16 bytes of a canonical (lowercase, hyphenated) UUID, else None."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    digits = text.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return raw.decode("latin-1") if len(raw) == 16 and raw.hex() == digits else None


def _uuid_text(raw: str) -> str:
    h = raw.encode("latin-1").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _integer(text: str) -> int | None:
    """The value of a canonical decimal integer (no sign, no leading zero), else None."""
    if not text.isascii() or not text.isdigit() or (text[0] == "0" and len(text) > 1):
        return None
    return int(text)


# Step ids repeat across a source's enrollments: their encoding is remembered (bounded).
_STEP_IDS: dict[str, tuple[int, str]] = {}


def _step_id(step_id: str) -> tuple[int, str]:
    known = _STEP_IDS.get(step_id)
    if known is not None:
        return known
    raw = _uuid(step_id)
    number = None if raw is not None else _integer(step_id)
    if raw is not None:
        known = (_STEP_ID_UUID, raw)
    elif number is not None:
        known = (_STEP_ID_INT, _varint(number))
    else:
        known = (_STEP_ID_TEXT, _text(step_id))
    if len(_STEP_IDS) >= 4096:
        _STEP_IDS.clear()
    _STEP_IDS[step_id] = known
    return known


def encode_state_fields(
    status: Status,
    raw_status: str,
    step: int | None,
    step_id: str | None,
    replied: bool | None,
    bounced: bool | None,
    opted_out: bool | None,
    reason: str | None,
) -> str:
    """The state key from the state's fields (what `encode_state` returns for that State)."""
    head = _STATUS_HEAD[status]
    rest = _FLAGS[replied, bounced, opted_out]
    if step is not None:
        head |= _STEP
        rest += _VARINTS[step << 1] if 0 <= step < 64 else _zigzag(step)
    code = _WORD_CODE.get(raw_status)
    rest += code if code is not None else _LITERAL + _text(raw_status)
    if step_id is not None:
        kind, encoded = _step_id(step_id)
        head |= kind
        rest += encoded
    if reason is not None:
        head |= _REASON
        rest += _word(reason)
    return chr(head) + rest


def encode_state(state: State) -> str:
    """The history-free part: equal strings mean nothing the diff watches has changed."""
    return encode_state_fields(
        state.status,
        state.raw_status,
        state.step,
        state.step_id,
        state.replied,
        state.bounced,
        state.opted_out,
        state.reason,
    )


def _id_item(text: str | None) -> str:
    if text is None:
        return _NONE
    raw = _uuid(text)
    if raw is not None:
        return _UUID + raw
    number = _integer(text)
    return _INT + _varint(number) if number is not None else _TEXT + _text(text)


def encode(
    state: State,
    *,
    enrollment_id: str,
    sequence_id: str | None,
    contact_id: str | None,
    contact_type: str | None = None,
    life: int = 0,
    rev: int = 0,
    missed: int = 0,
    gone: bool = False,
    high_step: int | None = None,
    fired: frozenset[str] = frozenset(),
) -> str:
    history = 0
    tail = ""
    if life:
        history |= _LIFE
        tail += _varint(life)
    if rev:
        history |= _REV
        tail += _varint(rev)
    if missed:
        history |= _MISSED
        tail += _varint(missed)
    if gone:
        history |= _GONE
    if high_step is not None and (state.step is None or high_step > state.step):
        history |= _HIGH
        tail += _zigzag(high_step)
    hidden = sum(_FIRED_BITS[f] for f in fired if getattr(state, f) is not True)
    if hidden:
        history |= _FIRED
        tail += chr(hidden)
    if contact_type or enrollment_id.partition(":") != (sequence_id, ":", contact_id):
        history |= _IDS
        tail += _id_item(sequence_id) + _id_item(contact_id)
    if contact_type:
        history |= _TYPE
        tail += _id_item(contact_type)
    return encode_state(state) + chr(history) + tail


def encode_stored(stored: Stored, *, enrollment_id: str) -> str:
    """`encode` of what `decode` reads back."""
    return encode(
        stored.state,
        enrollment_id=enrollment_id,
        sequence_id=stored.sequence_id,
        contact_id=stored.contact_id,
        contact_type=stored.contact_type,
        life=stored.life,
        rev=stored.rev,
        missed=stored.missed,
        gone=stored.gone,
        high_step=stored.high_step,
        fired=stored.fired,
    )


def unchanged(value: str, encoded_state: str) -> bool:
    """True when the stored `value` holds exactly `encoded_state` and needs no write."""
    end = len(encoded_state)
    return value.startswith(encoded_state) and len(value) > end and not ord(value[end]) & _REWRITE


def same_state(value: str, encoded_state: str) -> bool:
    """True when the stored `value`, in either format, holds the state `encoded_state` and no
    tombstone: nothing about the enrollment is news, though a text-format value still needs
    its rewrite (`unchanged` says so)."""
    if unchanged(value, encoded_state):
        return True
    if not value or value[0] >= "\x80":
        return False
    old = _decode_text(value, enrollment_id="")
    return not old.gone and encode_state(old.state) == encoded_state


def _skip_state(value: str) -> int:
    """Where the state key of `value` ends."""
    head = ord(value[0])
    at = 2
    if head & _STEP:
        _, at = _read_varint(value, at)
    at = _skip_word(value, at)
    kind = head & _STEP_ID_MASK
    if kind == _STEP_ID_UUID:
        at += 16
    elif kind == _STEP_ID_INT:
        _, at = _read_varint(value, at)
    elif kind == _STEP_ID_TEXT:
        size, at = _read_varint(value, at)
        at += size
    if head & _REASON:
        at = _skip_word(value, at)
    return at


def _skip_word(value: str, at: int) -> int:
    if value[at] != _LITERAL:
        return at + 1
    size, at = _read_varint(value, at + 1)
    return at + size


def _skip_history(value: str, at: int) -> tuple[int, int]:
    """(history byte, where the ids start) for the history starting at `at`."""
    history = ord(value[at])
    at += 1
    for bit in (_LIFE, _REV, _MISSED, _HIGH):
        if history & bit:
            _, at = _read_varint(value, at)
    if history & _FIRED:
        at += 1
    return history, at


def _read_id(value: str, at: int, names: Mapping[int, str] | None) -> tuple[str | None, int]:
    tag = value[at]
    if tag == _NONE:
        return None, at + 1
    if tag == _UUID:
        return _uuid_text(value[at + 1 : at + 17]), at + 17
    if tag == _INT:
        number, at = _read_varint(value, at + 1)
        return str(number), at
    if tag == _TEXT:
        return _read_text(value, at + 1)
    if ord(tag) < _REF_WIDE:
        index, at = ord(tag), at + 1
    elif ord(tag) == _REF_WIDE:
        index, at = _read_varint(value, at + 1)
    else:
        raise ValueError(f"unknown id item {ord(tag):#x}")
    if names is None or index not in names:
        raise ValueError("a stored name reference needs the source's dictionary (StateStore)")
    return names[index], at


def _skip_id(value: str, at: int) -> int:
    tag = value[at]
    if tag == _UUID:
        return at + 17
    if tag in (_INT, _TEXT) or ord(tag) == _REF_WIDE:
        size, at = _read_varint(value, at + 1)
        return at + size if tag == _TEXT else at
    return at + 1  # None or a one-byte reference


def _ref(index: int) -> str:
    return chr(index) if index < _REF_WIDE else chr(_REF_WIDE) + _varint(index)


def intern_ids(value: str, intern: Callable[[str], int | None]) -> str:
    """`value` with its sequence id and contact type replaced by dictionary references where
    `intern` gives one (None: keep the id itself). Any other value is returned as it is."""
    if not value or value[0] < "\x80":
        return value
    history, at = _skip_history(value, _skip_state(value))
    if not history & (_IDS | _TYPE):
        return value
    parts = [value[:at]]
    if history & _IDS:
        end = _skip_id(value, at)
        parts.append(_interned(value[at:end], intern))
        at, end = end, _skip_id(value, end)
        parts.append(value[at:end])  # a contact id is one enrollment's own: never interned
        at = end
    if history & _TYPE:
        parts.append(_interned(value[at : _skip_id(value, at)], intern))
    return "".join(parts)


def _interned(item: str, intern: Callable[[str], int | None]) -> str:
    text, _ = _read_id(item, 0, None) if ord(item[0]) > _REF_WIDE else (None, 0)
    if text is None:
        return item
    index = intern(text)
    return item if index is None else _ref(index)


def expand_ids(value: str, names: Mapping[int, str]) -> str:
    """The inverse of `intern_ids`: `value` as `encode` wrote it."""
    if not value or value[0] < "\x80":
        return value
    history, at = _skip_history(value, _skip_state(value))
    if not history & (_IDS | _TYPE):
        return value
    parts = [value[:at]]
    while at < len(value):
        text, end = _read_id(value, at, names)
        parts.append(_id_item(text))
        at = end
    return "".join(parts)


# How the store keeps values in Redis: the head of a value (its state key, and when its history
# has no numbers, the history byte, the sequence id and the contact id's tag) is shared by many
# enrollments, so it is kept once in the source's names and the value starts with its index:
# one byte 0x00-0x1F (0-31) or 0xE0-0xFE (32-62), else 0xFF and a varint. No other value starts
# with those bytes (text-format values start with a status letter, new keys with 0x80-0xDF).
_HEAD_WIDE = 0xFF
_SHORT_HEADS = 63


def head_end(value: str) -> int:
    """Where the shareable head of `value` (as `intern_ids` returns it) ends; 0 for a value
    that has none (text format)."""
    if not value or not "\x80" <= value[0] < "\xe0":
        return 0
    at = _skip_state(value)
    history = ord(value[at])
    if history & (_LIFE | _REV | _MISSED | _HIGH | _FIRED):
        return at  # numbers that differ between enrollments: share the state key only
    if not history & _IDS:
        return len(value) if not history & _TYPE else at + 1
    return _skip_id(value, at + 1) + 1  # up to the contact id's tag


def head_ref(index: int) -> str:
    if index < 32:
        return chr(index)
    if index < _SHORT_HEADS:
        return chr(0xE0 + index - 32)
    return chr(_HEAD_WIDE) + _varint(index)


def read_head_ref(value: str) -> tuple[int, int] | None:
    """(head index, where the rest starts) when `value` starts with a head reference."""
    first = ord(value[0])
    if first < 32:
        return first, 1
    if first < 0xE0:
        return None
    if first < _HEAD_WIDE:
        return first - 0xE0 + 32, 1
    return _read_varint(value, 1)


def decode(value: str, *, enrollment_id: str, names: Mapping[int, str] | None = None) -> Stored:
    """`names`: the source's dictionary, needed for values as the store keeps them in Redis."""
    if not value or value[0] < "\x80":
        return _decode_text(value, enrollment_id=enrollment_id)
    head = ord(value[0])
    replied, bounced, opted_out = _UNFLAGS[ord(value[1])]
    at = 2
    step = None
    if head & _STEP:
        step, at = _read_zigzag(value, at)
    raw_status, at = _read_word(value, at)
    step_id = None
    kind = head & _STEP_ID_MASK
    if kind == _STEP_ID_UUID:
        step_id, at = _uuid_text(value[at : at + 16]), at + 16
    elif kind == _STEP_ID_INT:
        number, at = _read_varint(value, at)
        step_id = str(number)
    elif kind == _STEP_ID_TEXT:
        step_id, at = _read_text(value, at)
    reason = None
    if head & _REASON:
        reason, at = _read_word(value, at)
    state = State(
        status=_STATUSES[(head >> 4) & 0x07],
        raw_status=raw_status,
        step=step,
        step_id=step_id,
        replied=replied,
        bounced=bounced,
        opted_out=opted_out,
        reason=reason,
    )
    history = ord(value[at])
    at += 1
    found: dict[int, int] = {}
    for bit in (_LIFE, _REV, _MISSED):
        if history & bit:
            found[bit], at = _read_varint(value, at)
    high_step = None
    if history & _HIGH:
        high_step, at = _read_zigzag(value, at)
    fired = frozenset[str]()
    if history & _FIRED:
        bits = ord(value[at])
        at += 1
        fired = frozenset(flag for flag, bit in _FIRED_BITS.items() if bits & bit)
    if history & _IDS:
        sequence_id, at = _read_id(value, at, names)
        contact_id, at = _read_id(value, at, names)
    else:
        sequence_id, _, contact_id = enrollment_id.partition(":")
    contact_type = None
    if history & _TYPE:
        contact_type, at = _read_id(value, at, names)
    return Stored(
        state=state,
        sequence_id=sequence_id,
        contact_id=contact_id,
        contact_type=contact_type,
        life=found.get(_LIFE, 0),
        rev=found.get(_REV, 0),
        missed=found.get(_MISSED, 0),
        gone=bool(history & _GONE),
        high_step=high_step,
        fired=fired,
    )


# The text format of earlier versions: still read, and still what event change keys hash.

SEP = "\x1f"
REASON_SEP = "\x1e"  # inside the raw_status field: "<raw_status>\x1e<reason>"
_STATUS_TO_CODE = {
    Status.PENDING: "p",
    Status.ACTIVE: "a",
    Status.PAUSED: "s",
    Status.BLOCKED: "b",
    Status.FINISHED: "f",
    Status.REMOVED: "r",
}
_CODE_TO_STATUS = {code: status for status, code in _STATUS_TO_CODE.items()}
_FLAG = {True: "t", False: "f", None: "n"}
_UNFLAG = {"t": True, "f": False, "n": None}
_LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}


def _clean(value: str | None) -> str:
    return "" if value is None else value.replace(SEP, " ").replace(REASON_SEP, " ")


def state_text(state: State) -> str:
    """The state as the text format wrote it. Event change keys hash this (worker/events.py),
    so a change re-detected after an upgrade (e.g. from a rolled-back snapshot) keeps its id."""
    flags = _FLAG[state.replied] + _FLAG[state.bounced] + _FLAG[state.opted_out]
    step = "" if state.step is None else str(state.step)
    return SEP.join(
        (
            _STATUS_TO_CODE[state.status] + flags,
            step,
            _clean(state.step_id),
            _clean(state.raw_status)
            + ("" if state.reason is None else REASON_SEP + _clean(state.reason)),
        )
    )


def _decode_text(value: str, *, enrollment_id: str) -> Stored:
    """A value in the text format (history "<life>.<rev>" + marks ".m<n>", ".g", ".h<n>",
    ".f<letters>"; ids only when not derivable; the contact type last)."""
    # Held one character per byte like every stored value; a plain str also works.
    with contextlib.suppress(UnicodeError):
        value = value.encode("latin-1").decode()
    parts = value.split(SEP)
    head, step, step_id, raw, history = parts[:5]
    life, rev, *marks = history.split(".") if history else ("0", "0")
    missed, gone, high_step, fired = 0, False, None, frozenset[str]()
    for mark in marks:
        kind, rest = mark[:1], mark[1:]
        if kind == "m":
            missed = int(rest or 1)
        elif kind == "g":
            gone = True
        elif kind == "h":
            high_step = int(rest)
        elif kind == "f":
            fired = frozenset(_LETTER_FLAGS[letter] for letter in rest)
    raw_status, has_reason, reason = raw.partition(REASON_SEP)
    state = State(
        status=_CODE_TO_STATUS[head[0]],
        raw_status=raw_status,
        step=int(step) if step else None,
        step_id=step_id or None,
        replied=_UNFLAG[head[1]],
        bounced=_UNFLAG[head[2]],
        opted_out=_UNFLAG[head[3]],
        reason=reason if has_reason else None,
    )
    if len(parts) >= 7:
        sequence_id, contact_id = parts[5] or None, parts[6] or None
    else:
        sequence_id, _, contact_id = enrollment_id.partition(":")
    return Stored(
        state=state,
        sequence_id=sequence_id,
        contact_id=contact_id,
        contact_type=(parts[7] or None) if len(parts) >= 8 else None,
        life=int(life or 0),
        rev=int(rev or 0),
        missed=missed,
        gone=gone,
        high_step=high_step,
        fired=fired,
    )
