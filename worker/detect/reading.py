"""A page's records -> what the store compares, cheaply; full Enrollments only where needed.

Most records of a re-poll are unchanged. Where the provider has a `peek` (worker/normalize),
a record is read as (id, updated_at, state fields) and encoded once per distinct state; only
the records the store reports changed are normalized in full. A record `peek` cannot read
takes the full path at once; one that fails it is quarantined (SPEC §5), not fatal. A page its
source decoded into typed records (worker/sources/typed.py) is peeked by the normalizer's
`read_typed` in one pass; a changed record it read is normalized from the typed record's
declared fields (`read_typed` declares every field the normalizer reads from such a record).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from itertools import compress, count
from typing import Any

from worker.detect.quarantine import Quarantine
from worker.detect.watermark import Newest
from worker.enrollment import Enrollment
from worker.normalize import Normalizer, StateFields
from worker.normalize.fields import RecordError
from worker.sources.base import RawPage
from worker.sources.typed import TypedRecords
from worker.store import codec
from worker.store.seen import SeenIds

_KEYS_KEPT = 4096
# A record `peek` read (normalized only if it changed), or an Enrollment normalized at once.
_Found = Mapping[str, Any] | Enrollment


class PageRead:
    """One page, read: `states` maps each readable enrollment id to its codec.encode_state."""

    def __init__(self, reader: PageReader, page: RawPage) -> None:
        self.states: dict[str, str] = {}
        self._found: dict[str, _Found] = {}
        self._reader = reader
        self._page = page
        self._typed: TypedRecords | None = None  # set when `read_typed` read the page
        self._typed_ids: list[str] = []  # the ids `read_typed` read, in record order

    def enrollments(
        self, ids: Mapping[str, object], *, seen: SeenIds | None
    ) -> dict[str, Enrollment]:
        """The Enrollments of `ids` (the changed ones), normalized in full now. A record that
        `peek` read but the normalizer refuses is quarantined and leaves `states`."""
        current: dict[str, Enrollment] = {}
        for enrollment_id, item in self._records(ids) if ids else ():
            enrollment = (
                item
                if isinstance(item, Enrollment)
                else self._reader.normalize(item, self._page, seen=seen)
            )
            if enrollment is None:
                del self.states[enrollment_id]
            else:
                current[enrollment_id] = enrollment
        return current

    def _records(self, ids: Mapping[str, object]) -> list[tuple[str, _Found]]:
        """The records of `ids`, in listing order (the store answers in its own): events keep
        the page's order. An id listed twice: its last record, in its first place, as in
        `states`."""
        typed, at = self._typed, self._typed_ids
        if typed is not None and at:  # `read_typed` read every record (`ids` in record order)
            # Where each changed one sits, found in one pass in C: a page holds a thousand.
            where = {at[p]: p for p in compress(count(), map(ids.__contains__, at))}
            return [(i, typed.declared(p)) for i, p in where.items()]
        found = self._found
        return [(i, found[i]) for i in filter(ids.__contains__, self.states)]


class PageReader:
    """Reads the pages of one listing; remembers the newest updated_at it met."""

    def __init__(self, normalizer: Normalizer, quarantine: Quarantine) -> None:
        self._normalizer = normalizer
        self._quarantine = quarantine
        self._keys: dict[StateFields, str] = {}  # state fields -> codec.encode_state_fields
        self._typed_keys: dict[Hashable, str] = {}  # the same, for `read_typed`
        self._read_typed = getattr(normalizer, "read_typed", None)
        self.newest = Newest()

    def normalize(
        self, record: Mapping[str, Any], page: RawPage, *, seen: SeenIds | None
    ) -> Enrollment | None:
        try:
            return self._normalizer(record, page=page)
        except RecordError as exc:
            self._quarantine.add(exc, where=page.where)
            if exc.enrollment_id is not None and seen is not None:
                seen.add(exc.enrollment_id)  # seen: never swept as absent
            return None

    def read(self, page: RawPage, *, seen: SeenIds | None) -> PageRead:
        read = PageRead(self, page)
        records = page.records
        if self._read_typed is not None and isinstance(records, TypedRecords):
            read._typed = records
            self._read_typed(
                records.typed,
                page,
                states=read.states,
                ids=read._typed_ids,
                keys=self._typed_keys,
                encode=codec.encode_state_fields,
                odd=lambda index: self._read_one(records[index], read, seen=seen),
            )
        else:
            for record in records:
                self._read_one(record, read, seen=seen)
        return read

    def _read_one(self, record: Mapping[str, Any], read: PageRead, *, seen: SeenIds | None) -> None:
        page, states, found = read._page, read.states, read._found
        peek = self._normalizer.peek
        if peek is not None:
            try:
                enrollment_id, updated_at, fields = peek(record, page=page)
            except Exception:  # noqa: S110 (anything odd: the full path decides)
                pass
            else:
                # A source has few distinct states: each is encoded once per listing.
                keys = self._keys
                key = keys.get(fields)
                if key is None:
                    key = codec.encode_state_fields(*fields)
                    if len(keys) < _KEYS_KEPT:
                        keys[fields] = key
                states[enrollment_id] = key
                found[enrollment_id] = record
                if updated_at is not None:
                    self.newest.saw(updated_at)
                return
        enrollment = self.normalize(record, page, seen=seen)
        if enrollment is not None:
            states[enrollment.enrollment_id] = codec.encode_state(enrollment.state)
            found[enrollment.enrollment_id] = enrollment
            if enrollment.updated_at is not None:
                self.newest.saw(enrollment.updated_at)
