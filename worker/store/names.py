"""The source's dictionary of names, as the state store keeps it (keys.state_names).

What many enrollments repeat is kept once and referred to by index: the sequence ids and
contact types values carry, the head of each value (state key, history byte, sequence: see
`codec.head_end`), and the sequence part of `<uuid>:<uuid>` ids. The dictionary is
append-only, read with the layout (no extra round trip), and a name is written in the same
atomic commit as every value or field that first refers to it, so no snapshot refers to a
missing name.
"""

from __future__ import annotations

from worker.errors import StoreError
from worker.store import buckets, codec
from worker.store.batch import Batch

# Names per source (loaded by every poll): heads and value ids stop being shared past
# min(MAX_NAMES, NAMES_BASE + tracked / NAMES_PER), so a small source loads a small dictionary
# and the dictionary (~30-100 B a name) costs at most a few bytes per enrollment. The sequences
# of packed pair fields are always named (a field must not depend on a cap).
MAX_NAMES = 4096
NAMES_BASE = 64
NAMES_PER = 32
_SHORT_REFS = 63  # names whose head reference is one byte (codec.head_ref)
# Names field: "2" when the source's state began with the v2 field packing (pair ids refer to
# their sequence's name, UUIDs in 16 bytes: buckets.pack_id_v2), "1" when it holds fields
# packed before (those stay as they are).
_PACKING = "packing"


class Names:
    """One source's dictionary, learnt with the layout; fresh names go out with their users."""

    def __init__(self, key: str, *, source: str) -> None:
        self.key = key
        self._source = source
        self.names: dict[int, str] = {}
        self.by_ref: dict[bytes, str] = {}  # one-byte head reference -> its name
        self._index: dict[str, int] = {}
        self._next_name = 0
        self._fresh: dict[int | str, str] = {}  # not committed yet: goes with each user
        self._batch: Batch | None = None
        self._written: set[int | str] = set()
        self.v2 = False
        self.loaded = False

    def learn(self, stored: dict[str, str], *, empty: bool) -> None:
        """The dictionary as read (HGETALL); `empty`: the source holds no state yet."""
        self.loaded = True
        self.names = {int(k): v for k, v in stored.items() if k.isdigit()}
        self._index = {name: index for index, name in self.names.items()}
        self.by_ref = {
            codec.head_ref(i).encode("latin-1"): n for i, n in self.names.items() if i < _SHORT_REFS
        }
        self._next_name = max(self.names, default=-1) + 1
        self._fresh = {}
        packing = stored.get(_PACKING)
        if packing is None:  # decided once, by the first commit: v2 only from the start
            packing = "2" if empty else "1"
            self._fresh[_PACKING] = packing
        self.v2 = packing == "2"

    def packing_used(self, batch: Batch) -> None:
        """The packing decision, if not committed yet, goes with the next commit."""
        if _PACKING in self._fresh:
            self._used(batch, _PACKING)

    def _used(self, batch: Batch, name: int | str) -> None:
        """A fresh name goes into every batch that uses it, so it commits with its first user
        whichever batch that turns out to be."""
        if batch is not self._batch:
            self._batch, self._written = batch, set()
        if name in self._fresh and name not in self._written:
            self._written.add(name)
            batch.hset(self.key, str(name), self._fresh[name])

    def intern(
        self, batch: Batch, name: str, *, tracked: int = 0, capped: bool = True
    ) -> int | None:
        index = self._index.get(name)
        if index is None:
            if capped and len(self._index) >= min(MAX_NAMES, NAMES_BASE + tracked // NAMES_PER):
                return None
            index = self._next_name
            self._next_name += 1
            self.names[index] = self._fresh[index] = name
            self._index[name] = index
            if index < _SHORT_REFS:
                self.by_ref[codec.head_ref(index).encode("latin-1")] = name
        self._used(batch, index)
        return index

    def field(self, enrollment_id: str, batch: Batch | None = None) -> str | bytes:
        """The hash field of an enrollment; with `batch`, a new name may be taken for it."""
        if self.v2:
            parts = buckets.pair_parts(enrollment_id)
            if parts is not None:
                sequence, contact = parts
                index = (
                    self._index.get(sequence)
                    if batch is None
                    else self.intern(batch, sequence, capped=False)
                )
                if index is not None:
                    return buckets.pack_pair_ref(index, contact)
            return buckets.pack_id_v2(enrollment_id)
        return buckets.pack_id(enrollment_id)

    def unpack(self, field: bytes) -> str:
        if self.v2:
            return buckets.unpack_id_v2(field, self.names)
        return buckets.unpack_id(field, self.names)

    def expand_raw(self, raw: bytes) -> str:
        head = self.by_ref.get(raw[:1])
        if head is not None:
            return head + raw[1:].decode("latin-1")
        return self.expand(raw.decode("latin-1"))

    def expand(self, value: str) -> str:
        """A value as read from a bucket, its head (if kept in the names) put back."""
        found = codec.read_head_ref(value) if value else None
        if found is None:
            return value
        index, rest = found
        head = self.names.get(index)
        if head is None:
            raise StoreError(f"stored state of {self._source!r} refers to a missing name")
        return head + value[rest:]

    def compact(self, batch: Batch, value: str, *, tracked: int) -> bytes:
        """`value` as Redis keeps it: names by index, one byte per character."""
        value = codec.intern_ids(value, lambda name: self.intern(batch, name, tracked=tracked))
        cut = codec.head_end(value)
        if cut:
            index = self.intern(batch, value[:cut], tracked=tracked)
            if index is not None:
                value = codec.head_ref(index) + value[cut:]
        return value.encode("latin-1")
