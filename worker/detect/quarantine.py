"""Records that fail normalization: skipped, counted, logged once per record and error.

A quarantined record's stored state is untouched (SPEC §5). The warning log is written once per
record and change of error, not per poll: a small hash per source maps enrollment id -> error
fingerprint. An entry goes when its record normalizes again, or when a full listing no longer
returns it; records whose id cannot be read are keyed by "?<fingerprint>". `status` shows how
many records are quarantined now (that hash's size; an incremental listing does not return
every bad record again) and the most recent listing's first error (enrollment id, field,
message).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio.client import Pipeline

from worker.normalize.fields import RecordError
from worker.store import keys
from worker.store.batch import Batch

log = structlog.get_logger("seqwatch.quarantine")
UNREADABLE = "?"


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    enrollment_id: str | None  # None: the id itself could not be read
    field: str | None
    error: str
    where: str

    @property
    def key(self) -> str:
        return self.enrollment_id or UNREADABLE + self.fingerprint

    @property
    def fingerprint(self) -> str:
        material = f"{self.field}\x1f{self.error}".encode()
        return hashlib.blake2b(material, digest_size=6).hexdigest()

    def as_dict(self) -> dict[str, str | None]:
        return {"enrollment_id": self.enrollment_id, "field": self.field, "error": self.error}


class Quarantine:
    """The quarantined records of one listing."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._key = keys.quarantine(source)
        self._known: dict[str, str] = {}
        self._pending: list[Quarantined] = []
        self._seen_keys: set[str] = set()
        self.count = 0
        self.unreadable = 0
        self.first: Quarantined | None = None

    def queue_load(self, pipe: Pipeline) -> None:
        """What was logged before (small: one entry per currently bad record), read on the
        pipeline that opens the poll; `loaded` takes in the reply."""
        pipe.hgetall(self._key)

    def loaded(self, known: dict[str, str]) -> None:
        self._known = known

    def add(self, exc: RecordError, *, where: str) -> None:
        record = Quarantined(
            enrollment_id=exc.enrollment_id, field=exc.field, error=exc.detail, where=where
        )
        self.count += 1
        self.unreadable += record.enrollment_id is None
        self.first = self.first or record
        self._pending.append(record)

    def settle(self, batch: Batch, *, normalized: Mapping[str, object]) -> None:
        """Adds this page's bookkeeping to its commit; logs each new or changed error once."""
        for record in self._pending:
            self._seen_keys.add(record.key)
            if self._known.get(record.key) == record.fingerprint:
                continue
            self._known[record.key] = record.fingerprint
            batch.hset(self._key, record.key, record.fingerprint)
            log.warning(
                "record_quarantined",
                source=self.source,
                enrollment_id=record.enrollment_id,
                field=record.field,
                error=record.error,
                where=record.where,
            )
        self._pending.clear()
        if self._known:
            for enrollment_id in normalized:
                if self._known.pop(enrollment_id, None) is not None:
                    batch.hdel(self._key, enrollment_id)
                    log.info("record_released", source=self.source, enrollment_id=enrollment_id)

    def summarize(self, batch: Batch, *, full: bool) -> None:
        """Count and first error for `status`; after a full listing, entries it did not return
        (records gone from the provider) are dropped."""
        if full:
            for key in [k for k in self._known if k not in self._seen_keys]:
                del self._known[key]
                batch.hdel(self._key, key)
        meta = keys.meta(self.source)
        batch.hset(meta, "quarantined", len(self._known))
        if self.first is not None:
            batch.hset(meta, "quarantine_first", orjson.dumps(self.first.as_dict()).decode())
            batch.hincr(meta, "quarantined_total", self.count)
        elif not self._known:
            batch.hdel(meta, "quarantine_first")
